package server

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
)

// ops is what the server keeps for operating it: readiness, the separate
// metrics listener if any, and the shutdown bound.
type ops struct {
	ready           *readiness
	metricsHTTP     *http.Server
	shutdownTimeout time.Duration
}

// Routes served beside the API, outside its authentication (like /healthz).
const (
	routeReady   = "GET /readyz"
	routeMetrics = "GET /metrics"
	routeOpenAPI = "GET /openapi.json"
	routeLogin   = "GET /drawbridge/v1/login"
)

// serveOps builds the HTTP server of ln: the API plus /readyz and (unless
// cfg.MetricsListen moves it) /metrics, all observed (request IDs, metrics,
// logs). It starts the metrics listener when there is one.
func (s *Server) serveOps(cfg Config, apiServer *api.Server, apiHandler http.Handler, ln net.Listener) error {
	m := s.Metrics
	if err := m.SetSources(metricSources(s.store, s.Webhooks)); err != nil {
		return err
	}
	s.ops.ready = &readiness{st: s.store, timeout: 2 * time.Second}
	s.ops.shutdownTimeout = cfg.ShutdownTimeout
	if s.ops.shutdownTimeout <= 0 {
		s.ops.shutdownTimeout = 10 * time.Second
	}
	metricsHere := cfg.MetricsListen == ""
	login := loginConfigHandler(cfg)
	// A plain switch, not a ServeMux: a mux in front would redirect the
	// API's unclean paths before the API sees them.
	own := func(r *http.Request) (http.Handler, string) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return nil, ""
		}
		switch {
		case r.URL.Path == "/readyz":
			return s.ops.ready, routeReady
		case r.URL.Path == "/metrics" && metricsHere:
			return m.Handler(), routeMetrics
		case r.URL.Path == "/openapi.json":
			return openAPIHandler, routeOpenAPI
		case r.URL.Path == "/drawbridge/v1/login":
			return login, routeLogin
		}
		return nil, ""
	}
	route := func(r *http.Request) string {
		if _, p := own(r); p != "" {
			return p
		}
		if strings.HasPrefix(r.URL.Path, "/console/") {
			return "/console/" // the web console's pages: one label
		}
		return apiServer.Route(r)
	}
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, _ := own(r); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		apiHandler.ServeHTTP(w, r)
	})
	var handler http.Handler = root
	if testWrapHandler != nil {
		handler = testWrapHandler(handler, route)
	}
	s.http = newHTTPServer(cfg, observed(handler, route, m, cfg.Logger))
	if metricsHere {
		s.MetricsURL = s.URL + "/metrics"
		return nil
	}
	mln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return errors.New("--metrics-listen: " + err.Error())
	}
	mux := http.NewServeMux()
	mux.Handle(routeMetrics, m.Handler())
	s.ops.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.MetricsURL = "http://" + mln.Addr().String() + "/metrics"
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.ops.metricsHTTP.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("metrics server", "err", err)
		}
	}()
	return nil
}

// openAPIHandler serves the REST API's OpenAPI 3.1 document.
var openAPIHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(api.OpenAPIDocument())
})
