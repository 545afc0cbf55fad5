package admin

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/codearts-recover-worker/codearts-recover-worker/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testenv.LeakOptions()...)
}
