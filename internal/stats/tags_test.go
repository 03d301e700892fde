package stats

import (
	"cmp"
	"slices"
	"strings"
	"testing"
)

type tagCase struct {
	name      string
	extracted string
	tags      []Tag
}

// Envoy's own expectations (its tag_extractor_impl_test.cc), plus App
// Mesh's documented inbound examples and the names the proxy emits.
var defaultTagCases = []tagCase{
	{"cluster.ratelimit.upstream_rq_timeout", "cluster.upstream_rq_timeout",
		[]Tag{{TagClusterName, "ratelimit"}}},
	{"listener.[__1]_0.ssl.ciphers.AES256-SHA", "listener.ssl.ciphers",
		[]Tag{{TagListenerAddress, "[__1]_0"}, {TagSSLCipher, "AES256-SHA"}}},
	{"cluster.ratelimit.ssl.ciphers.ECDHE-RSA-AES128-GCM-SHA256", "cluster.ssl.ciphers",
		[]Tag{{TagClusterName, "ratelimit"}, {TagSSLCipherSuite, "ECDHE-RSA-AES128-GCM-SHA256"}}},
	{"listener.[2001_0db8_85a3_0000_0000_8a2e_0370_7334]_3543.ssl.ciphers.AES256-SHA", "listener.ssl.ciphers",
		[]Tag{{TagListenerAddress, "[2001_0db8_85a3_0000_0000_8a2e_0370_7334]_3543"}, {TagSSLCipher, "AES256-SHA"}}},
	{"listener.127.0.0.1_0.ssl.ciphers.AES256-SHA", "listener.ssl.ciphers",
		[]Tag{{TagListenerAddress, "127.0.0.1_0"}, {TagSSLCipher, "AES256-SHA"}}},
	{"listener.my_prefix.ssl.ciphers.AES256-SHA", "listener.ssl.ciphers",
		[]Tag{{TagListenerAddress, "my_prefix"}, {TagSSLCipher, "AES256-SHA"}}},
	{"listener.prefix.notmatching.ssl.ciphers.AES256-SHA", "listener.notmatching.ssl.ciphers",
		[]Tag{{TagListenerAddress, "prefix"}, {TagSSLCipher, "AES256-SHA"}}},
	{"listener.admin.ssl.ciphers.AES256-SHA", "listener.admin.ssl.ciphers",
		[]Tag{{TagSSLCipher, "AES256-SHA"}}},
	{"listener.127.0.0.1_0.ssl.versions.TLSv1.2", "listener.ssl.versions",
		[]Tag{{TagListenerAddress, "127.0.0.1_0"}, {TagSSLVersion, "TLSv1.2"}}},
	{"cluster.cluster_0.ssl.curves.P-256", "cluster.ssl.curves",
		[]Tag{{TagClusterName, "cluster_0"}, {TagSSLCurve, "P-256"}}},
	{"mongo.mongo_filter.op_reply", "mongo.op_reply",
		[]Tag{{TagMongoPrefix, "mongo_filter"}}},
	{"mongo.mongo_filter.cmd.foo_cmd.reply_size", "mongo.cmd.reply_size",
		[]Tag{{TagMongoPrefix, "mongo_filter"}, {TagMongoCmd, "foo_cmd"}}},
	{"mongo.mongo_filter.collection.bar_collection.query.multi_get", "mongo.collection.query.multi_get",
		[]Tag{{TagMongoPrefix, "mongo_filter"}, {TagMongoCollection, "bar_collection"}}},
	{"mongo.mongo_filter.collection.bar_collection.callsite.baz_callsite.query.scatter_get", "mongo.collection.callsite.query.scatter_get",
		[]Tag{{TagMongoPrefix, "mongo_filter"}, {TagMongoCollection, "bar_collection"}, {TagMongoCallsite, "baz_callsite"}}},
	{"ratelimit.foo_ratelimiter.over_limit", "ratelimit.over_limit",
		[]Tag{{TagRatelimitPrefix, "foo_ratelimiter"}}},
	{"foo_ratelimiter.http_local_rate_limit.ok", "http_local_rate_limit.ok",
		[]Tag{{TagLocalHTTPRatelimitPrefix, "foo_ratelimiter"}}},
	{"local_rate_limit.foo_ratelimiter.rate_limited", "local_rate_limit.rate_limited",
		[]Tag{{TagLocalNetworkRatelimitPrefix, "foo_ratelimiter"}}},
	{"http.egress_dynamodb_iad.downstream_cx_total", "http.downstream_cx_total",
		[]Tag{{TagHTTPConnManagerPrefix, "egress_dynamodb_iad"}}},
	{"http.egress_dynamodb_iad.dynamodb.operation.Query.upstream_rq_time", "http.dynamodb.operation.upstream_rq_time",
		[]Tag{{TagHTTPConnManagerPrefix, "egress_dynamodb_iad"}, {TagDynamoOperation, "Query"}}},
	{"http.egress_dynamodb_iad.dynamodb.table.bar_table.upstream_rq_time", "http.dynamodb.table.upstream_rq_time",
		[]Tag{{TagHTTPConnManagerPrefix, "egress_dynamodb_iad"}, {TagDynamoTable, "bar_table"}}},
	{"http.egress_dynamodb_iad.dynamodb.table.bar_table.capacity.Query.__partition_id=ABC1234", "http.dynamodb.table.capacity",
		[]Tag{{TagHTTPConnManagerPrefix, "egress_dynamodb_iad"}, {TagDynamoTable, "bar_table"}, {TagDynamoOperation, "Query"}, {TagDynamoPartitionID, "ABC1234"}}},
	{"cluster.grpc_cluster.grpc.grpc_service_1.grpc_method_1.success", "cluster.grpc.success",
		[]Tag{{TagClusterName, "grpc_cluster"}, {TagGRPCBridgeMethod, "grpc_method_1"}, {TagGRPCBridgeService, "grpc_service_1"}}},
	{"vhost.vhost_1.vcluster.vcluster_1.upstream_rq_2xx", "vhost.vcluster.upstream_rq_xx",
		[]Tag{{TagVirtualHost, "vhost_1"}, {TagVirtualCluster, "vcluster_1"}, {TagResponseCodeClass, "2"}}},
	{"vhost.vhost_1.vcluster.vcluster_1.upstream_rq_200", "vhost.vcluster.upstream_rq",
		[]Tag{{TagVirtualHost, "vhost_1"}, {TagVirtualCluster, "vcluster_1"}, {TagResponseCode, "200"}}},
	{"vhost.vhost_1.route.my_route.upstream_rq_total", "vhost.route.upstream_rq_total",
		[]Tag{{TagVirtualHost, "vhost_1"}, {TagRoute, "my_route"}}},
	{"listener.127.0.0.1_3012.http.http_prefix.downstream_rq_5xx", "listener.http.downstream_rq_xx",
		[]Tag{{TagHTTPConnManagerPrefix, "http_prefix"}, {TagListenerAddress, "127.0.0.1_3012"}, {TagResponseCodeClass, "5"}}},
	{"http.egress_dynamodb_iad.user_agent.ios.downstream_cx_total", "http.user_agent.downstream_cx_total",
		[]Tag{{TagHTTPUserAgent, "ios"}, {TagHTTPConnManagerPrefix, "egress_dynamodb_iad"}}},
	{"auth.clientssl.clientssl_prefix.auth_ip_allowlist", "auth.clientssl.auth_ip_allowlist",
		[]Tag{{TagClientSSLPrefix, "clientssl_prefix"}}},
	{"tcp.tcp_prefix.downstream_flow_control_resumed_reading_total", "tcp.downstream_flow_control_resumed_reading_total",
		[]Tag{{TagTCPPrefix, "tcp_prefix"}}},
	{"udp.udp_prefix.downstream_flow_control_resumed_reading_total", "udp.downstream_flow_control_resumed_reading_total",
		[]Tag{{TagUDPPrefix, "udp_prefix"}}},
	{"http.fault_connection_manager.fault.fault_cluster.aborts_injected", "http.fault.aborts_injected",
		[]Tag{{TagHTTPConnManagerPrefix, "fault_connection_manager"}, {TagFaultDownstreamCluster, "fault_cluster"}}},
	{"http.rds_connection_manager.rds.route_config.123.update_success", "http.rds.update_success",
		[]Tag{{TagHTTPConnManagerPrefix, "rds_connection_manager"}, {TagRDSRouteConfig, "route_config.123"}}},
	{"listener_manager.worker_123.dispatcher.loop_duration_us", "listener_manager.worker_dispatcher.loop_duration_us",
		[]Tag{{TagWorkerID, "123"}}},
	{"listener.127.0.0.1_3012.worker_123.downstream_cx_active", "listener.worker_downstream_cx_active",
		[]Tag{{TagListenerAddress, "127.0.0.1_3012"}, {TagWorkerID, "123"}}},
	{"listener.myprefix.worker_123.downstream_cx_active", "listener.worker_downstream_cx_active",
		[]Tag{{TagListenerAddress, "myprefix"}, {TagWorkerID, "123"}}},
	{"server.worker_123.watchdog_miss", "server.worker_watchdog_miss",
		[]Tag{{TagWorkerID, "123"}}},
	{"thrift.thrift_prefix.response", "thrift.response", []Tag{{TagThriftPrefix, "thrift_prefix"}}},
	{"redis.my_redis_prefix.response", "redis.response", []Tag{{TagRedisPrefix, "my_redis_prefix"}}},

	// App Mesh's documented inbound stats (stat prefix ingress.<proto>.<port>).
	{"http.ingress.http.5555.downstream_rq_2xx", "http.downstream_rq_xx",
		[]Tag{{TagResponseCodeClass, "2"}, {TagAppMeshListenerProtocol, "http"}, {TagAppMeshListenerPort, "5555"}, {TagHTTPConnManagerPrefix, "ingress"}}},
	{"listener.0.0.0.0_15000.http.ingress.http.5555.downstream_rq_2xx", "listener.http.downstream_rq_xx",
		[]Tag{{TagResponseCodeClass, "2"}, {TagAppMeshListenerProtocol, "http"}, {TagAppMeshListenerPort, "5555"}, {TagHTTPConnManagerPrefix, "ingress"}, {TagListenerAddress, "0.0.0.0_15000"}}},
	{"http.ingress.http.5555.rds.rds_ingress_http_5555.version_text", "http.rds.version_text",
		[]Tag{{TagAppMeshListenerProtocol, "http"}, {TagAppMeshListenerPort, "5555"}, {TagAppMeshRDSRouteConfig, "rds_ingress_http_5555"}, {TagHTTPConnManagerPrefix, "ingress"}}},
	{"http.ingress.http.6666.downstream_cx_length_ms", "http.downstream_cx_length_ms",
		[]Tag{{TagAppMeshListenerProtocol, "http"}, {TagAppMeshListenerPort, "6666"}, {TagHTTPConnManagerPrefix, "ingress"}}},
	{"tcp.ingress.tcp.9000.downstream_cx_total", "tcp.downstream_cx_total",
		[]Tag{{TagAppMeshListenerProtocol, "tcp"}, {TagAppMeshListenerPort, "9000"}, {TagTCPPrefix, "ingress"}}},

	// What the dashboards read.
	{"cluster.cds_egress_demo_greeting-v1_http_9080.upstream_rq_200", "cluster.upstream_rq",
		[]Tag{{TagResponseCode, "200"}, {TagClusterName, "cds_egress_demo_greeting-v1_http_9080"}}},
	{"cluster.cds_egress_demo_greeting-v1_http_9080.upstream_rq_5xx", "cluster.upstream_rq_xx",
		[]Tag{{TagResponseCodeClass, "5"}, {TagClusterName, "cds_egress_demo_greeting-v1_http_9080"}}},
	{"cluster.cds_egress_demo_greeting-v1_http_9080.outlier_detection.ejections_enforced_consecutive_5xx", "cluster.outlier_detection.ejections_enforced_consecutive_5xx",
		[]Tag{{TagClusterName, "cds_egress_demo_greeting-v1_http_9080"}}},
	{"cluster.cds_egress_demo_greeting-v1_http_9080.circuit_breakers.default.rq_open", "cluster.circuit_breakers.default.rq_open",
		[]Tag{{TagClusterName, "cds_egress_demo_greeting-v1_http_9080"}}},
	{"http.egress.downstream_cx_active", "http.downstream_cx_active",
		[]Tag{{TagHTTPConnManagerPrefix, "egress"}}},
	{"server.live", "server.live", nil},
	{"control_plane.connected_state", "control_plane.connected_state", nil},
	{"listener.admin.downstream_cx_total", "listener.admin.downstream_cx_total", nil},
	{"", "", nil},
	{"cluster", "cluster", nil},
	{"cluster.", "cluster.", nil},
}

func sortedTags(tags []Tag) []Tag {
	out := slices.Clone(tags)
	slices.SortFunc(out, func(a, b Tag) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Value, b.Value)) })
	return out
}

func TestDefaultTagExtraction(t *testing.T) {
	t.Parallel()
	fwd, err := NewTagProducer(DefaultTagRules())
	if err != nil {
		t.Fatal(err)
	}
	// Envoy checks that the default rules do not depend on their order;
	// so do we, running them reversed.
	reversed := DefaultTagRules()
	slices.Reverse(reversed)
	rev, err := NewTagProducer(reversed)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range defaultTagCases {
		t.Run(tc.name, func(t *testing.T) {
			got, tags := fwd.Extract(tc.name)
			if got != tc.extracted {
				t.Errorf("extracted name = %q, want %q", got, tc.extracted)
			}
			if !slices.Equal(sortedTags(tags), sortedTags(tc.tags)) {
				t.Errorf("tags = %v, want %v", tags, tc.tags)
			}
			rgot, rtags := rev.Extract(tc.name)
			if rgot != got || !slices.Equal(sortedTags(rtags), sortedTags(tags)) {
				t.Errorf("reversed rules: %q %v, forward %q %v", rgot, rtags, got, tags)
			}
		})
	}
}

// TestTagOrder pins the order tags are listed in (Prometheus label
// order): rules without a literal first token first, then by prefix.
func TestTagOrder(t *testing.T) {
	t.Parallel()
	p, err := NewTagProducer(DefaultTagRules())
	if err != nil {
		t.Fatal(err)
	}
	_, tags := p.Extract("cluster.cds_egress_demo_greeting-v1_http_9080.upstream_rq_200")
	want := []Tag{{TagResponseCode, "200"}, {TagClusterName, "cds_egress_demo_greeting-v1_http_9080"}}
	if !slices.Equal(tags, want) {
		t.Errorf("tags = %v, want %v", tags, want)
	}
}

func TestTokenRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, name string
		ok            bool
		value, rest   string
	}{
		{"$.is.the.time", "now.is.the.time", true, "now", "is.the.time"},
		{"$.is.the.*", "now.is.the.time", true, "now", "is.the.time"},
		{"$.is.the.**", "now.is.the.time.to.come.to.the.aid", true, "now", "is.the.time.to.come.to.the.aid"},
		{"$.is.the.*", "now.is.the.time.to.come.to.the.aid", false, "", ""},
		{"$.**.aid", "now.is.the.time.to.come.to.the.aid", true, "now", "is.the.time.to.come.to.the.aid"},
		{"$.**.aid.of.their", "now.is.the.time.to.come.to.the.aid.backtrack.now.aid.of.their", true, "now", "is.the.time.to.come.to.the.aid.backtrack.now.aid.of.their"},
		{"now.**.$.of.their", "now.is.the.time.to.come.to.the.aid.fake.aid.real.of.their", true, "real", "now.is.the.time.to.come.to.the.aid.fake.aid.of.their"},
		{"now.**.aid.$.of.their", "now.is.the.time.to.come.to.the.aid.fake.aid.real.of.their", true, "real", "now.is.the.time.to.come.to.the.aid.fake.aid.of.their"},
		{"now.is.$.time", "now.is.the.time", true, "the", "now.is.time"},
		{"now.*.$.time", "now.is.the.time", true, "the", "now.is.time"},
		{"now.is.the.$", "now.is.the.time", true, "time", "now.is.the"},
		{"now.is.$.time", "now.was.the.time", false, "", ""},
		{"now.$.the", "now.is.the.time", false, "", ""},
		{"now.$.the.time.to", "now.is.the.time", false, "", ""},
		{"cluster.$.**", "cluster.foo", false, "", ""},
		{"cluster.$.**", "cluster..x", false, "", ""},
	} {
		t.Run(tc.pattern+"/"+tc.name, func(t *testing.T) {
			p, err := NewTagProducer([]TagRule{{Name: "t", Tokens: tc.pattern}})
			if err != nil {
				t.Fatal(err)
			}
			rest, tags := p.Extract(tc.name)
			if !tc.ok {
				if len(tags) != 0 || rest != tc.name {
					t.Errorf("matched: %q %v", rest, tags)
				}
				return
			}
			if len(tags) != 1 || tags[0].Value != tc.value || rest != tc.rest {
				t.Errorf("got %q %v, want %q [t=%s]", rest, tags, tc.rest, tc.value)
			}
		})
	}
}

func TestRegexPrefix(t *testing.T) {
	t.Parallel()
	for regex, want := range map[string]string{
		`^prefix(foo).`:           "",
		`^prefix\.foo`:            "prefix",
		`^prefix_optional(?=\.)`:  "prefix_optional",
		`^notACompleteToken`:      "",
		`^onlyToken$`:             "onlyToken",
		`(prefix)`:                "",
		`^(prefix)`:               "",
		`prefix(foo)`:             "",
		`^http\.[^\.]+\.rds\.(x)`: "http",
	} {
		if got := regexPrefix(regex); got != want {
			t.Errorf("regexPrefix(%q) = %q, want %q", regex, got, want)
		}
	}
}

func TestBadRules(t *testing.T) {
	t.Parallel()
	for _, r := range []TagRule{
		{Name: "", Regex: `^a\.(b)`},
		{Name: "x", Regex: `(`},
		{Name: "x", Regex: `abc`},
		{Name: "x", Tokens: "a.b"},
		{Name: "x"},
		{Name: "x", Regex: `(a)`, Tokens: "$"},
	} {
		if _, err := NewTagProducer([]TagRule{r}); err == nil {
			t.Errorf("rule %+v compiled", r)
		}
	}
}

// FuzzExtract checks that extraction never panics and that what it
// returns recomposes: every tag value occurs in the name, and the
// extracted name is the name with some bytes removed, in order.
func FuzzExtract(f *testing.F) {
	for _, tc := range defaultTagCases {
		f.Add(tc.name)
	}
	f.Add("listener.....http...")
	f.Add("a.b.c_rq_999")
	p, err := NewTagProducer(DefaultTagRules())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, tags := p.Extract(name)
		if len(got) > len(name) {
			t.Fatalf("extracted %q longer than %q", got, name)
		}
		if !isSubsequence(got, name) {
			t.Fatalf("extracted %q is not %q with bytes removed", got, name)
		}
		seen := map[string]bool{}
		for _, tg := range tags {
			if tg.Value == "" || !strings.Contains(name, tg.Value) {
				t.Fatalf("tag %v not in %q", tg, name)
			}
			if seen[tg.Name] {
				t.Fatalf("tag %s twice in %v", tg.Name, tags)
			}
			seen[tg.Name] = true
		}
		if len(tags) == 0 && got != name {
			t.Fatalf("no tags but %q became %q", name, got)
		}
		again, _ := p.Extract(name)
		if again != got {
			t.Fatalf("not deterministic: %q then %q", got, again)
		}
	})
}

func isSubsequence(sub, s string) bool {
	i := 0
	for j := 0; j < len(s) && i < len(sub); j++ {
		if s[j] == sub[i] {
			i++
		}
	}
	return i == len(sub)
}

// FuzzTagRule compiles arbitrary rules and runs them on arbitrary names:
// a bad rule is an error, never a panic, and a good one keeps the
// recomposition property of FuzzExtract.
func FuzzTagRule(f *testing.F) {
	f.Add(`^cluster\.((.+?)\.)`, "", "cluster.a.b")
	f.Add("", "now.**.$.of.their", "now.is.real.of.their")
	f.Add("", "$.**", "a")
	f.Add(`(x)|(y)`, "", "y")
	f.Fuzz(func(t *testing.T, regex, tokens, name string) {
		p, err := NewTagProducer([]TagRule{{Name: "t", Regex: regex, Tokens: tokens}})
		if err != nil {
			return
		}
		got, tags := p.Extract(name)
		if !isSubsequence(got, name) {
			t.Fatalf("extracted %q is not %q with bytes removed", got, name)
		}
		for _, tg := range tags {
			if tg.Value == "" || !strings.Contains(name, tg.Value) {
				t.Fatalf("tag %v not in %q", tg, name)
			}
		}
	})
}
