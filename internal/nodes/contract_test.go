package nodes_test

import (
	"testing"

	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/nodes/nodestest"
)

// The executor's two kinds of connection meet the same contract.
func TestExecutorConnContract(t *testing.T) {
	for _, tc := range []struct {
		name string
		sftp bool
	}{{"sftp", true}, {"exec", false}} {
		t.Run(tc.name, func(t *testing.T) {
			do, kind := nodes.ContractTarget(t, tc.sftp)
			nodestest.FSContract(t, do, nodestest.LocalDisk{})
			nodestest.RunContract(t, do, nodestest.LocalDisk{})
			nodestest.StatVFSContract(t, do, nodestest.LocalDisk{})
			if k := kind(); k != tc.name {
				t.Fatalf("connection is %s, want %s", k, tc.name)
			}
		})
	}
}
