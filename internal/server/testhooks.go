package server

// testWrapStore, when set (by tests only), wraps the store Start opens, so
// a test can take the database away and bring it back.
var testWrapStore func(backend) backend
