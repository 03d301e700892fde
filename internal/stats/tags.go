package stats

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Tag is one dimension of a stat: a name such as envoy.cluster_name and
// the value taken from (or attached to) the stat's name.
type Tag struct {
	Name  string
	Value string
}

// TagRule tells how to pull one tag out of a stat name. It is Envoy's
// TagSpecifier in Go form: exactly one of Regex and Tokens is set.
//
// A Regex rule matches anywhere in the name (RE2 syntax, which for the
// patterns Envoy ships and App Mesh generated behaves as ECMAScript's
// leftmost-first search). Its first capture group is the text removed
// from the name to form the tag-extracted name; its second capture group,
// when present and non-empty, is the tag's value (otherwise the first
// group is). Substr, when set, is a literal that must occur in the name
// for the rule to be tried at all, and NotValue rejects one value (Envoy
// uses it to keep "admin" from becoming a listener address).
//
// A Tokens rule is Envoy's tokenized form: the name is split on dots and
// matched token by token against the pattern, where "*" matches one
// token, "**" any run of tokens (at least one when it ends the pattern)
// and "$" one token that becomes the value; that token and one adjoining
// dot are removed.
type TagRule struct {
	Name     string
	Regex    string
	Tokens   string
	Substr   string
	NotValue string
}

// Envoy's well-known tag names, as its default extractors name them.
const (
	TagClusterName                  = "envoy.cluster_name"
	TagListenerAddress              = "envoy.listener_address"
	TagHTTPConnManagerPrefix        = "envoy.http_conn_manager_prefix"
	TagHTTPUserAgent                = "envoy.http_user_agent"
	TagSSLCipher                    = "envoy.ssl_cipher"
	TagSSLCipherSuite               = "cipher_suite"
	TagSSLCurve                     = "envoy.ssl_curve"
	TagSSLSigalg                    = "envoy.ssl_sigalg"
	TagSSLVersion                   = "envoy.ssl_version"
	TagClientSSLPrefix              = "envoy.clientssl_prefix"
	TagMongoPrefix                  = "envoy.mongo_prefix"
	TagMongoCmd                     = "envoy.mongo_cmd"
	TagMongoCollection              = "envoy.mongo_collection"
	TagMongoCallsite                = "envoy.mongo_callsite"
	TagRatelimitPrefix              = "envoy.ratelimit_prefix"
	TagLocalHTTPRatelimitPrefix     = "envoy.local_http_ratelimit_prefix"
	TagLocalNetworkRatelimitPrefix  = "envoy.local_network_ratelimit_prefix"
	TagLocalListenerRatelimitPrefix = "envoy.local_listener_ratelimit_prefix"
	TagDNSFilterPrefix              = "envoy.dns_filter_prefix"
	TagTCPPrefix                    = "envoy.tcp_prefix"
	TagUDPPrefix                    = "envoy.udp_prefix"
	TagFaultDownstreamCluster       = "envoy.fault_downstream_cluster"
	TagDynamoOperation              = "envoy.dynamo_operation"
	TagDynamoTable                  = "envoy.dynamo_table"
	TagDynamoPartitionID            = "envoy.dynamo_partition_id"
	TagGRPCBridgeService            = "envoy.grpc_bridge_service"
	TagGRPCBridgeMethod             = "envoy.grpc_bridge_method"
	TagVirtualHost                  = "envoy.virtual_host"
	TagVirtualCluster               = "envoy.virtual_cluster"
	TagResponseCode                 = "envoy.response_code"
	TagResponseCodeClass            = "envoy.response_code_class"
	TagRDSRouteConfig               = "envoy.rds_route_config"
	TagRoute                        = "envoy.route"
	TagWorkerID                     = "envoy.worker_id"
	TagThriftPrefix                 = "envoy.thrift_prefix"
	TagRedisPrefix                  = "envoy.redis_prefix"
	TagExtAuthzPrefix               = "envoy.ext_authz_prefix"
)

// App Mesh's tag names: the ones its Envoy image's bootstrap generated.
const (
	// TagAppMeshListenerProtocol and TagAppMeshListenerPort come from
	// inbound stat prefixes ingress.<protocol>.<port>, always.
	TagAppMeshListenerProtocol = "appmesh.listener_protocol"
	TagAppMeshListenerPort     = "appmesh.listener_port"
	// TagAppMeshRDSRouteConfig is App Mesh's own name (underscore, not
	// dot) for the route configuration of an inbound listener, whose stat
	// prefix has dots and so escapes Envoy's envoy.rds_route_config rule.
	TagAppMeshRDSRouteConfig = "envoy_rds_route_config"
	// TagAppMeshMesh and the virtual node/gateway tags are fixed tags
	// added with ENABLE_ENVOY_STATS_TAGS=1.
	TagAppMeshMesh           = "appmesh.mesh"
	TagAppMeshVirtualNode    = "appmesh.virtual_node"
	TagAppMeshVirtualGateway = "appmesh.virtual_gateway"
	// The metrics extension's tags (APPMESH_METRIC_EXTENSION_VERSION=1).
	TagExtMesh                 = "Mesh"
	TagExtVirtualNode          = "VirtualNode"
	TagExtVirtualGateway       = "VirtualGateway"
	TagExtTargetVirtualNode    = "TargetVirtualNode"
	TagExtTargetVirtualService = "TargetVirtualService"
)

// Pieces Envoy's well-known regexes are written with (expandRegex in
// Envoy's well_known_names.cc), re-expressed for RE2.
var regexPieces = strings.NewReplacer(
	// An IPv4 or bracketed IPv6 address with a port after an underscore.
	"<ADDRESS>", `(?:(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[a-fA-F_\d]+\])_\d+)`,
	"<CIPHER>", `[\w-]+`,
	"<TLS_VERSION>", `TLSv\d\.\d`,
	"<TAG_VALUE>", `[^\.]+`,
	"<ROUTE_CONFIG_NAME>", `[\w\-\.]+`,
	"<LISTENER_OR_CLUSTER_WITH_NAME>", `(?:listener|cluster)\..*?`,
)

// EnvoyTagRules returns Envoy's default tag extractors, in Envoy's order
// (the order matters only for which of two rules with the same tag name
// wins, and for the order tags are listed in).
func EnvoyTagRules() []TagRule {
	re := func(name, regex, substr string) TagRule {
		return TagRule{Name: name, Regex: regexPieces.Replace(regex), Substr: substr}
	}
	tok := func(name, tokens string) TagRule { return TagRule{Name: name, Tokens: tokens} }
	listenerAddr := re(TagListenerAddress, `^listener\.((<ADDRESS>|<TAG_VALUE>)\.)`, "")
	listenerAddr.NotValue = "admin"
	return []TagRule{
		// *_rq(_<response_code>)
		re(TagResponseCode, `_rq(_(\d{3}))$`, "_rq_"),
		// *_rq_(<response_code_class>)xx
		re(TagResponseCodeClass, `_rq_((\d))xx$`, "_rq_"),
		// http.[<stat_prefix>.]dynamodb.table.[<table_name>.]capacity.[<operation_name>.](__partition_id=<last_seven_characters_from_partition_id>)
		re(TagDynamoPartitionID, `^http\.<TAG_VALUE>\.dynamodb\.table\.<TAG_VALUE>\.capacity\.<TAG_VALUE>(\.__partition_id=(\w{7}))$`, ".dynamodb.table."),
		// http.[<stat_prefix>.]dynamodb.operation.(<operation_name>.)* or
		// http.[<stat_prefix>.]dynamodb.table.[<table_name>.]capacity.(<operation_name>.)[<partition_id>]
		re(TagDynamoOperation, `^http\.<TAG_VALUE>\.dynamodb.(?:operation|table\.<TAG_VALUE>\.capacity)(\.(<TAG_VALUE>))(?:\.|$)`, ".dynamodb."),
		// mongo.[<stat_prefix>.]collection.[<collection>.]callsite.(<callsite>.)query.*
		tok(TagMongoCallsite, "mongo.*.collection.*.callsite.$.query.**"),
		// http.[<stat_prefix>.]dynamodb.table.(<table_name>.)* or
		// http.[<stat_prefix>.]dynamodb.error.(<table_name>.)*
		re(TagDynamoTable, `^http\.<TAG_VALUE>\.dynamodb.(?:table|error)\.((<TAG_VALUE>)\.)`, ".dynamodb."),
		// mongo.[<stat_prefix>.]collection.(<collection>.)query.*
		tok(TagMongoCollection, "mongo.*.collection.$.**.query.*"),
		// mongo.[<stat_prefix>.]cmd.(<cmd>.)*
		tok(TagMongoCmd, "mongo.*.cmd.$.**"),
		// cluster.[<route_target_cluster>.]grpc.[<grpc_service>.](<grpc_method>.)*
		tok(TagGRPCBridgeMethod, "cluster.*.grpc.*.$.**"),
		// http.[<stat_prefix>.]user_agent.(<user_agent>.)*
		tok(TagHTTPUserAgent, "http.*.user_agent.$.**"),
		// vhost.[<virtual host name>.]vcluster.(<virtual_cluster_name>.)*
		tok(TagVirtualCluster, "vhost.*.vcluster.$.**"),
		// http.[<stat_prefix>.]fault.(<downstream_cluster>.)*
		tok(TagFaultDownstreamCluster, "http.*.fault.$.**"),
		// listener.[<address>.]ssl.ciphers.(<cipher>)
		re(TagSSLCipher, `^listener\..*?\.ssl\.ciphers(\.(<CIPHER>))$`, ".ssl.ciphers."),
		// listener.[<address>.]ssl.curves.(<curve>)
		re(TagSSLCurve, `^<LISTENER_OR_CLUSTER_WITH_NAME>\.ssl\.curves(\.(<CIPHER>))$`, ".ssl.curves."),
		// listener.[<address>.]ssl.sigalgs.(<algorithm>)
		re(TagSSLSigalg, `^<LISTENER_OR_CLUSTER_WITH_NAME>\.ssl\.sigalgs(\.(<CIPHER>))$`, ".ssl.sigalgs."),
		// listener.[<address>.]ssl.versions.(<version>)
		re(TagSSLVersion, `^<LISTENER_OR_CLUSTER_WITH_NAME>\.ssl\.versions(\.(<TLS_VERSION>))$`, ".ssl.versions."),
		// cluster.[<cluster_name>.]ssl.ciphers.(<cipher>)
		re(TagSSLCipherSuite, `^cluster\.<TAG_VALUE>\.ssl\.ciphers(\.(<CIPHER>))$`, ".ssl.ciphers."),
		// cluster.[<route_target_cluster>.]grpc.(<grpc_service>.)*
		tok(TagGRPCBridgeService, "cluster.*.grpc.$.**"),
		// tcp.(<stat_prefix>.)*
		tok(TagTCPPrefix, "tcp.$.**"),
		// udp.(<stat_prefix>.)*
		tok(TagUDPPrefix, "udp.$.**"),
		// auth.clientssl.(<stat_prefix>.)*
		tok(TagClientSSLPrefix, "auth.clientssl.$.**"),
		// ratelimit.(<stat_prefix>.)*
		tok(TagRatelimitPrefix, "ratelimit.$.**"),
		// cluster.(<cluster_name>.)*
		tok(TagClusterName, "cluster.$.**"),
		// listener.[<address>.]http.(<stat_prefix>.)*
		re(TagHTTPConnManagerPrefix, `^listener\..*?\.http\.((<TAG_VALUE>)\.)`, ".http."),
		// cluster.[<cluster>.]ext_authz.[<ext_authz_prefix>.]*
		tok(TagExtAuthzPrefix, "cluster.*.ext_authz.$.**"),
		// http.[<http_conn_mgr_prefix>.]ext_authz.[<ext_authz_prefix>.]*
		tok(TagExtAuthzPrefix, "http.*.ext_authz.$.**"),
		// http.(<stat_prefix>.)*
		tok(TagHTTPConnManagerPrefix, "http.$.**"),
		// listener.<address|stat_prefix>.(worker_<id>.)*, listener_manager.(worker_<id>.)*, server.(worker_<id>.)*
		re(TagWorkerID, `^(?:listener\.(?:<ADDRESS>|<TAG_VALUE>)\.|server\.|listener_manager\.)worker_((\d+)\.)`, ""),
		// listener.(<address|stat_prefix>.)*, but not "admin"
		listenerAddr,
		// vhost.(<virtual host name>.)*
		tok(TagVirtualHost, "vhost.$.**"),
		// mongo.(<stat_prefix>.)*
		tok(TagMongoPrefix, "mongo.$.**"),
		// http.[<stat_prefix>.]rds.(<route_config_name>.)<base_stat>
		re(TagRDSRouteConfig, `^http\.<TAG_VALUE>\.rds\.((<ROUTE_CONFIG_NAME>)\.)\w+?$`, ".rds."),
		// vhost.[<virtual host name>.]route.(<route_stat_prefix>.)*
		tok(TagRoute, "vhost.*.route.$.**"),
		// thrift.(<stat_prefix>.)*
		tok(TagThriftPrefix, "thrift.$.**"),
		// redis.(<stat_prefix>.)*
		tok(TagRedisPrefix, "redis.$.**"),
		// (<stat_prefix>.).http_local_rate_limit.**
		tok(TagLocalHTTPRatelimitPrefix, "$.http_local_rate_limit.**"),
		// local_rate_limit.(<stat_prefix>.)
		tok(TagLocalNetworkRatelimitPrefix, "local_rate_limit.$.**"),
		// listener_local_ratelimit.(<stat_prefix>.)
		tok(TagLocalListenerRatelimitPrefix, "listener_local_ratelimit.$.**"),
		// dns_filter.(<stat_prefix>.).**
		tok(TagDNSFilterPrefix, "dns_filter.$.**"),
	}
}

// AppMeshTagRules returns the rules App Mesh's Envoy image always added
// (with or without ENABLE_ENVOY_STATS_TAGS): inbound stat prefixes are
// ingress.<protocol>.<port>, and these pull the protocol and port out so
// that the tag-extracted names stay the ones dashboards query
// (http.downstream_rq_xx with envoy.http_conn_manager_prefix="ingress").
func AppMeshTagRules() []TagRule {
	return []TagRule{
		{Name: TagAppMeshListenerProtocol, Regex: `.*?\.ingress\.((\w+?)\.)[0-9]+?\.(.+?)$`},
		{Name: TagAppMeshListenerPort, Regex: `.*?\.ingress\.\w+?\.(([0-9]+?)\.)(.+?)$`},
		{Name: TagAppMeshRDSRouteConfig, Regex: `.*?\.ingress\.\w+?\.[0-9]+?\.rds\.((.*?)\.)(.+?)$`},
	}
}

// DefaultTagRules is what a Store uses unless told otherwise: Envoy's
// default extractors followed by App Mesh's.
func DefaultTagRules() []TagRule {
	return append(EnvoyTagRules(), AppMeshTagRules()...)
}

// TagProducer turns a stat name into its tag-extracted name and tags. It
// is immutable and safe for concurrent use. Like Envoy's, every rule is
// matched against the original name and the removed spans are cut out at
// the end, so the result does not depend on the order the rules run in.
type TagProducer struct {
	noPrefix []*tagExtractor            // tried on every name
	byPrefix map[string][]*tagExtractor // tried when the first token matches
	dupNames map[string]bool            // tag names with more than one rule
}

type tagExtractor struct {
	name     string
	prefix   string
	re       *regexp.Regexp
	substr   string
	notValue string
	tokens   []string
	matchIdx int
}

// NewTagProducer compiles rules. A rule whose regex does not compile, or
// whose token pattern has no "$", is an error.
func NewTagProducer(rules []TagRule) (*TagProducer, error) {
	p := &TagProducer{byPrefix: map[string][]*tagExtractor{}, dupNames: map[string]bool{}}
	seen := map[string]bool{}
	for i, r := range rules {
		e, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("tag rule %d (%q): %w", i, r.Name, err)
		}
		if seen[r.Name] {
			p.dupNames[r.Name] = true
		}
		seen[r.Name] = true
		if e.prefix == "" {
			p.noPrefix = append(p.noPrefix, e)
		} else {
			p.byPrefix[e.prefix] = append(p.byPrefix[e.prefix], e)
		}
	}
	return p, nil
}

func compileRule(r TagRule) (*tagExtractor, error) {
	if r.Name == "" {
		return nil, fmt.Errorf("tag name is empty")
	}
	e := &tagExtractor{name: r.Name, substr: r.Substr, notValue: r.NotValue}
	switch {
	case r.Regex != "" && r.Tokens != "":
		return nil, fmt.Errorf("both regex and tokens set")
	case r.Regex != "":
		re, err := regexp.Compile(r.Regex)
		if err != nil {
			return nil, fmt.Errorf("compile regex: %w", err)
		}
		if re.NumSubexp() < 1 {
			return nil, fmt.Errorf("regex %q has no capture group", r.Regex)
		}
		e.re = re
		e.prefix = regexPrefix(r.Regex)
	case r.Tokens != "":
		e.tokens = strings.Split(r.Tokens, ".")
		e.matchIdx = slices.Index(e.tokens, "$")
		if e.matchIdx < 0 {
			return nil, fmt.Errorf("token pattern %q has no $", r.Tokens)
		}
		if first := e.tokens[0]; first != "$" && first != "*" && first != "**" {
			e.prefix = first
		}
	default:
		return nil, fmt.Errorf("neither regex nor tokens set")
	}
	return e, nil
}

// regexPrefix is Envoy's extractRegexPrefix: the literal first token of a
// regex anchored as ^word\. (or ^word$), used only to skip rules that
// cannot match.
func regexPrefix(regex string) string {
	if !strings.HasPrefix(regex, "^") {
		return ""
	}
	for i := 1; i < len(regex); i++ {
		c := regex[i]
		if isAlnum(c) || c == '_' {
			continue
		}
		if i > 1 {
			rest := regex[i:]
			last := i == len(regex)-1
			if (!last && (strings.HasPrefix(rest, `\.`) || strings.HasPrefix(rest, `(?=\.)`))) || (last && c == '$') {
				return regex[1:i]
			}
		}
		return ""
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// span is a half-open range of bytes to remove from a name.
type span struct{ start, end int }

// Extract returns name with every matched tag's text removed, and the
// tags in the order the rules matched (rules without a literal first
// token first, as Envoy runs them).
func (p *TagProducer) Extract(name string) (string, []Tag) {
	if p == nil {
		return name, nil
	}
	var tags []Tag
	var cut []span
	var tokens []string
	var matched map[string]bool
	try := func(e *tagExtractor) {
		if matched != nil && matched[e.name] {
			return
		}
		var ok bool
		var t Tag
		var s span
		if e.re != nil {
			t, s, ok = e.extractRegex(name)
		} else {
			if tokens == nil {
				tokens = strings.Split(name, ".")
			}
			t, s, ok = e.extractTokens(name, tokens)
		}
		if !ok {
			return
		}
		tags = append(tags, t)
		cut = append(cut, s)
		if p.dupNames[e.name] {
			if matched == nil {
				matched = map[string]bool{}
			}
			matched[e.name] = true
		}
	}
	for _, e := range p.noPrefix {
		try(e)
	}
	if dot := strings.IndexByte(name, '.'); dot >= 0 {
		for _, e := range p.byPrefix[name[:dot]] {
			try(e)
		}
	}
	return removeSpans(name, cut), tags
}

func (e *tagExtractor) extractRegex(name string) (Tag, span, bool) {
	if e.substr != "" && !strings.Contains(name, e.substr) {
		return Tag{}, span{}, false
	}
	m := e.re.FindStringSubmatchIndex(name)
	if m == nil || m[2] < 0 || m[3] <= m[2] {
		return Tag{}, span{}, false
	}
	rm := span{m[2], m[3]}
	value := name[m[2]:m[3]]
	if len(m) >= 6 && m[4] >= 0 && m[5] > m[4] {
		value = name[m[4]:m[5]]
	}
	if e.notValue != "" && value == e.notValue {
		return Tag{}, span{}, false
	}
	return Tag{Name: e.name, Value: value}, rm, true
}

func (e *tagExtractor) extractTokens(name string, in []string) (Tag, span, bool) {
	start, idx, ok := e.search(in, 0, 0, 0, -1, -1)
	if !ok || in[idx] == "" {
		return Tag{}, span{}, false
	}
	value := in[idx]
	end := start + len(value)
	// Remove the dot that joins the value to the next token, or, for a
	// value that ends the name, the dot before it.
	if idx < len(in)-1 {
		end++
	} else if start > 0 {
		start--
	}
	return Tag{Name: e.name, Value: value}, span{start, end}, true
}

// search matches input tokens from in[i] against pattern tokens from
// e.tokens[j]; off is the byte offset of in[i] in the name, and start/idx
// what "$" captured so far (-1 before). It returns the byte offset and
// the index of the token "$" captured.
func (e *tagExtractor) search(in []string, i, j, off, start, idx int) (int, int, bool) {
	for ; i < len(in) && j < len(e.tokens); i, j = i+1, j+1 {
		switch pat := e.tokens[j]; {
		case j == e.matchIdx:
			start, idx = off, i
		case pat == "**":
			if j == len(e.tokens)-1 {
				// A trailing ** swallows the rest (at least one token).
				return start, idx, idx >= 0
			}
			// Find the rest of the pattern anywhere from here on: ** in
			// the middle matches any run of tokens, even an empty one.
			for ; i < len(in); i++ {
				if s, x, ok := e.search(in, i, j+1, off, start, idx); ok {
					return s, x, true
				}
				off += len(in[i]) + 1
			}
			return -1, -1, false
		case pat != "*" && pat != in[i]:
			return -1, -1, false
		}
		off += len(in[i]) + 1
	}
	if i == len(in) && j == len(e.tokens) && idx >= 0 {
		return start, idx, true
	}
	return -1, -1, false
}

// removeSpans returns s without the bytes in the (possibly overlapping)
// spans.
func removeSpans(s string, spans []span) string {
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
	var b strings.Builder
	b.Grow(len(s))
	pos := 0
	for _, sp := range spans {
		if sp.start > pos {
			b.WriteString(s[pos:sp.start])
		}
		pos = max(pos, sp.end)
	}
	if pos < len(s) {
		b.WriteString(s[pos:])
	}
	return b.String()
}
