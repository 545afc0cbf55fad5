package worker_test

import (
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
	"github.com/codearts-recover-worker/codearts-recover-worker/internal/wire"
	"github.com/codearts-recover-worker/codearts-recover-worker/queue"
	"github.com/codearts-recover-worker/codearts-recover-worker/worker"
)

func testenvSource(c *queue.Consumer) worker.Source    { return wire.Source{C: c} }
func testenvRecoverer(e *testenv.Env) worker.Recoverer { return wire.Recoverer(e.API) }
