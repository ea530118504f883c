package leader

import (
	"fmt"

	"github.com/go-logr/logr"
)

// zkLogger routes the ZooKeeper client's own messages through logr, so
// nothing reaches stdout. The client formats free text; it becomes the
// value of one key under a constant message. Its chatter (every reconnect
// attempt) is verbose: the elector logs the state changes that matter.
type zkLogger struct{ log logr.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.V(1).Info("zookeeper client", "detail", fmt.Sprintf(format, args...))
}
