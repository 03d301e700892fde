package registry

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func inst(id, addr string, port int) Instance {
	return Instance{Mesh: "demo", VirtualNode: "greeting-v1", ID: id, Address: addr, Port: port,
		NamespaceName: "demo.local", ServiceName: "greeting", Attributes: map[string]string{"version": "v1"}}
}

func TestRegisterRenewExpire(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	r := New(clk.Now)
	ch := r.Changed()
	a := inst("a", "127.0.0.1", 9080)
	a.TTLSeconds = 10
	got, err := r.Register(a)
	if err != nil {
		t.Fatal(err)
	}
	if got.HealthStatus != Healthy || !got.ExpiresAt.Equal(time.Unix(1010, 0).UTC()) {
		t.Fatalf("defaults not filled: %+v", got)
	}
	select {
	case <-ch:
	default:
		t.Fatal("register did not signal a change")
	}
	v := r.Version()
	clk.Add(8 * time.Second)
	if _, err := r.Register(a); err != nil { // renewal
		t.Fatal(err)
	}
	if r.Version() != v {
		t.Fatal("a renewal that changes nothing must not count as a change")
	}
	clk.Add(8 * time.Second) // 16s after first, 8s after renewal: still live
	if n := r.Expire(); n != 0 || len(r.List("demo", "greeting-v1")) != 1 {
		t.Fatalf("renewed instance expired early: removed %d", n)
	}
	clk.Add(3 * time.Second)
	if len(r.List("demo", "")) != 0 {
		t.Fatal("List must hide expired instances even before Expire runs")
	}
	if n := r.Expire(); n != 1 {
		t.Fatalf("Expire removed %d, want 1", n)
	}
	if r.Version() == v {
		t.Fatal("expiry must count as a change")
	}
}

func TestChangeOfHealthCounts(t *testing.T) {
	r := New(nil)
	a := inst("a", "127.0.0.1", 9080)
	r.Register(a)
	v := r.Version()
	a.HealthStatus = Unhealthy
	r.Register(a)
	if r.Version() == v {
		t.Fatal("a health change must count as a change")
	}
}

func TestSelect(t *testing.T) {
	r := New(nil)
	r.Register(inst("a", "127.0.0.1", 1))
	b := inst("b", "127.0.0.1", 2)
	b.Attributes = map[string]string{"version": "v2"}
	r.Register(b)
	c := inst("c", "127.0.0.1", 3)
	c.ServiceName = "other"
	r.Register(c)
	if got := r.Select("demo.local", "greeting", nil); len(got) != 2 {
		t.Fatalf("no attributes: got %d instances, want 2", len(got))
	}
	got := r.Select("demo.local", "greeting", map[string]string{"version": "v2"})
	if len(got) != 1 || got[0].ID != "b" {
		t.Fatalf("attribute filter: got %+v", got)
	}
}

func TestDeregister(t *testing.T) {
	r := New(nil)
	r.Register(inst("a", "127.0.0.1", 1))
	if err := r.Deregister("demo", "greeting-v1", "a"); err != nil {
		t.Fatal(err)
	}
	if err := r.Deregister("demo", "greeting-v1", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second deregister: %v, want ErrNotFound", err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		mut  func(*Instance)
		want string
	}{
		{func(i *Instance) { i.Mesh = "" }, "mesh: is required"},
		{func(i *Instance) { i.VirtualNode = "" }, "virtualNode: is required"},
		{func(i *Instance) { i.ID = "" }, "id: must be 1 to 255 characters"},
		{func(i *Instance) { i.Address = "greeting.local" }, "address: must be an IPv4 or IPv6 address"},
		{func(i *Instance) { i.Port = 70000 }, "port: must be between 1 and 65535"},
		{func(i *Instance) { i.HealthStatus = "OK" }, "healthStatus: must be one of HEALTHY, UNHEALTHY"},
		{func(i *Instance) { i.TTLSeconds = 7200 }, "ttlSeconds: must be between 1 and 3600"},
		{func(i *Instance) { i.Attributes = map[string]string{"": "x"} }, "attributes: keys must be"},
	}
	for _, c := range cases {
		in := inst("a", "127.0.0.1", 1)
		c.mut(&in)
		err := in.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
	}
}

func TestReturnedInstancesAreCopies(t *testing.T) {
	r := New(nil)
	got, _ := r.Register(inst("a", "127.0.0.1", 1))
	got.Attributes["version"] = "tampered"
	if r.List("", "")[0].Attributes["version"] != "v1" {
		t.Fatal("caller changed the registry's copy")
	}
}

func TestViewIndexesAndStaysCurrent(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	r := New(clk.Now)
	reg := func(in Instance) {
		t.Helper()
		if _, err := r.Register(in); err != nil {
			t.Fatal(err)
		}
	}
	a := inst("a", "10.0.0.1", 9080)
	a.TTLSeconds = 10
	reg(a)
	reg(inst("b", "10.0.0.2", 9080))
	other := Instance{Mesh: "other", VirtualNode: "x", ID: "c", Address: "10.0.0.3", Port: 1, NamespaceName: "demo.local", ServiceName: "greeting"}
	reg(other)
	ids := func(ins []*Instance) string {
		var s []string
		for _, in := range ins {
			s = append(s, in.Mesh+"/"+in.ID)
		}
		return strings.Join(s, ",")
	}
	v := r.View()
	if got := ids(v.Service("demo.local", "greeting")); got != "demo/a,demo/b,other/c" {
		t.Errorf("Service = %s", got)
	}
	if got := ids(v.Node("demo", "greeting-v1")); got != "demo/a,demo/b" {
		t.Errorf("Node = %s", got)
	}
	if r.View() != v {
		t.Error("a view with no change in between was rebuilt")
	}
	reg(inst("d", "10.0.0.4", 9080))
	if got := ids(r.View().Node("demo", "greeting-v1")); got != "demo/a,demo/b,demo/d" {
		t.Errorf("after a registration, Node = %s", got)
	}
	clk.Add(10 * time.Second) // a expires; Expire has not run
	if got := ids(r.View().Node("demo", "greeting-v1")); got != "demo/b,demo/d" {
		t.Errorf("after a's expiry, Node = %s", got)
	}
}

func TestAddressAttributes(t *testing.T) {
	cases := []struct {
		attrs map[string]string
		err   string
	}{
		{map[string]string{AttrIPv4: "10.0.0.1", AttrIPv6: "2001:db8::1"}, ""},
		{map[string]string{AttrIPv4: "2001:db8::1"}, "attributes.AWS_INSTANCE_IPV4: must be an IPv4 address"},
		{map[string]string{AttrIPv6: "10.0.0.1"}, "attributes.AWS_INSTANCE_IPV6: must be an IPv6 address"},
		{map[string]string{AttrIPv6: "::ffff:10.0.0.1"}, "attributes.AWS_INSTANCE_IPV6: must be an IPv6 address"},
		{map[string]string{AttrIPv6: "nope"}, "attributes.AWS_INSTANCE_IPV6: must be an IPv6 address"},
	}
	for _, c := range cases {
		in := inst("a", "10.0.0.1", 9080)
		in.Attributes = c.attrs
		err := in.Validate()
		if c.err == "" && err != nil || c.err != "" && (err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%v: error %v, want %q", c.attrs, err, c.err)
		}
	}
}

// TestViewLen: a view counts the live instances List lists, expired ones
// left out.
func TestViewLen(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	r := New(clk.Now)
	for i, ttl := range []int{10, 10, 30} {
		in := inst(fmt.Sprintf("i-%d", i), fmt.Sprintf("127.0.0.%d", i+1), 9080)
		in.TTLSeconds = ttl
		if _, err := r.Register(in); err != nil {
			t.Fatal(err)
		}
	}
	if n, want := r.View().Len(), len(r.List("", "")); n != want || n != 3 {
		t.Fatalf("Len %d, List %d, want 3", n, want)
	}
	clk.Add(20 * time.Second)
	if n, want := r.View().Len(), len(r.List("", "")); n != want || n != 1 {
		t.Fatalf("after two expired: Len %d, List %d, want 1", n, want)
	}
}
