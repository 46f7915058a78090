// Package pgtest gives tests a real PostgreSQL server. With
// DRAWBRIDGE_TEST_POSTGRES set (a DSN of a role allowed to create
// databases) it uses that server; otherwise it starts a throwaway cluster
// from the PostgreSQL binaries on this machine (initdb into a temporary
// directory, the server on a free 127.0.0.1 port with its unix socket in
// that directory, run as the "postgres" system user when the tests run as
// root, since PostgreSQL refuses root) and stops it when the test binary
// ends. Without either, tests skip and say why; under CI (CI=true) they
// fail instead, because CI must really run them.
//
// A package using it calls pgtest.Main from TestMain so the cluster is
// stopped after its tests:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the variable holding an existing server's DSN.
const EnvDSN = "DRAWBRIDGE_TEST_POSTGRES"

var (
	once     sync.Once
	adminDSN string
	startErr error
	skipMsg  string
	cluster  *Cluster
)

// Main runs the tests and stops the cluster, if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	if cluster != nil {
		cluster.Stop()
	}
	return code
}

// AdminDSN returns the DSN of a superuser (or database creator) on the
// test server, starting the server on first use. It skips or fails t when
// no server can be had.
func AdminDSN(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if dsn := os.Getenv(EnvDSN); dsn != "" {
			adminDSN = dsn
			return
		}
		bin, err := FindBinaries()
		if err != nil {
			skipMsg = fmt.Sprintf("no PostgreSQL: %s unset and %v (install Debian's postgresql package, or set %s to a DSN)", EnvDSN, err, EnvDSN)
			return
		}
		cluster, startErr = StartCluster(bin)
		if startErr == nil {
			adminDSN = cluster.DSN("postgres")
		}
	})
	if startErr != nil {
		t.Fatalf("pgtest: starting a throwaway PostgreSQL: %v", startErr)
	}
	if adminDSN == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: %s; CI must run the PostgreSQL tests (.ci/run installs postgresql)", skipMsg)
		}
		t.Skip("pgtest: " + skipMsg)
	}
	return adminDSN
}

// NewDatabase creates an empty database on the test server, drops it when
// t ends, and returns its DSN.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminDSN(t)
	var b [6]byte
	rand.Read(b[:])
	name := "drawbridge_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connect %s: %v", redact(admin), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

// withDatabase replaces the database in a URL or key=value DSN.
func withDatabase(dsn, name string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}

// Binaries is where initdb and postgres live.
type Binaries struct{ Dir string }

// FindBinaries looks for initdb and postgres under
// /usr/lib/postgresql/*/bin (newest version first), then on PATH.
func FindBinaries() (Binaries, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return Binaries{Dir: d}, nil
		}
	}
	return Binaries{}, errors.New("no initdb and postgres under /usr/lib/postgresql/*/bin or on PATH")
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	Dir  string // data directory and socket directory live below it
	Port int
	User string // the database superuser
	cmd  *exec.Cmd
	done chan struct{}
	log  string
	bin  Binaries
	args []string
	cred *syscall.Credential
}

// DSN returns a DSN for database db over TCP on 127.0.0.1.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", c.User, c.Port, db)
}

// StartCluster runs initdb in a new temporary directory and starts the
// server on a free loopback port, tuned for tests (no fsync).
func StartCluster(bin Binaries) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "drawbridge-pg-")
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	c := &Cluster{Dir: dir, User: "postgres", log: filepath.Join(dir, "server.log")}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin.Dir, "initdb"), "-D", data, "-U", c.User, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	c.Port, err = freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.bin, c.cred = bin, cred
	c.args = []string{"-D", data, "-p", strconv.Itoa(c.Port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=300", "-c", "shared_buffers=128MB",
		"-c", "max_locks_per_transaction=256", "-c", "max_pred_locks_per_transaction=256"}
	if err := c.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.waitReady(30 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// start runs the server process. It is started from a goroutine locked to
// its OS thread that never exits while the server runs, so Pdeathsig (sent
// when the thread that started the child dies) fires only when the test
// process itself dies: a killed test binary leaves no server behind.
func (c *Cluster) start() error {
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if c.cred != nil {
		os.Chown(c.log, int(c.cred.Uid), int(c.cred.Gid))
	}
	c.done = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		cmd := exec.Command(filepath.Join(c.bin.Dir, "postgres"), c.args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			logf.Close()
			started <- err
			return
		}
		c.cmd = cmd
		done := c.done
		started <- nil
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	return nil
}

func (c *Cluster) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-c.done:
			b, _ := os.ReadFile(c.log)
			return fmt.Errorf("postgres exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(c.log)
			return fmt.Errorf("postgres not ready after %v: %v\n%s", limit, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: SIGINT, then SIGKILL after
// 10 s) and removes its directory.
func (c *Cluster) Stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	os.RemoveAll(c.Dir)
}

// credential returns the identity to run PostgreSQL as: nil when not
// root, else the "postgres" system user.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and no \"postgres\" user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
