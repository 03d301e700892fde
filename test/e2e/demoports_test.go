package e2e

import (
	"math/rand/v2"
	"sync/atomic"
)

// demoBlocks counts the blocks of demo ports handed out in this process;
// demoFirst is where the first block is, picked at random so that runs
// of the suite side by side are unlikely to meet.
var (
	demoBlocks atomic.Int64
	demoFirst  = rand.IntN(180)
)

// demoPortBase returns the first of 50 ports no other demo of this test
// process uses (the demo takes fixed ports: API, xDS, gateway, then its
// --port-base block). They lie below Linux's ephemeral range, so they
// do not collide with the other tests' :0 ports either. Two demos of one
// run once drew the same block at random, and one's load generator then
// sent its requests to the other's gateway.
func demoPortBase() int {
	n := int(demoBlocks.Add(1) - 1)
	return 20000 + 50*((demoFirst+n)%180)
}
