// Scratch module that holds Jaeger v2 as a Go tool. scripts/install-test-deps.sh
// copies it into the test-deps cache, runs `go get -tool` there and builds
// the binary; nothing of Jaeger enters meshlens's own go.mod.
module meshlens.test/jaeger

go 1.25
