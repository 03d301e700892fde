package accesslog

import (
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// op is what a segment of a compiled format prints.
type op uint8

const (
	opLiteral op = iota
	opStartTime
	opReq
	opReqWithoutQuery
	opResp
	opTrailer
	opResponseCode
	opResponseCodeDetails
	opResponseFlags
	opBytesReceived
	opBytesSent
	opDuration
	opRequestDuration
	opRequestTxDuration
	opResponseDuration
	opResponseTxDuration
	opUpstreamHost
	opUpstreamCluster
	opUpstreamLocal
	opUpstreamTransportFailureReason
	opDownstreamRemote
	opDownstreamLocal
	opDownstreamDirectRemote
	opProtocol
	opUpstreamProtocol
	opRequestedServerName
	opRouteName
	opHostname
	opGRPCStatus
	opConnectionID
	opAttemptCount
	opDownstreamTLSVersion
	opDownstreamPeerURISAN
	opTraceID
	opSpanID
)

// addrPart selects what an address operator prints.
type addrPart uint8

const (
	addrFull   addrPart = iota // ip:port ([ip]:port for IPv6)
	addrNoPort                 // ip
	addrPort                   // port
)

// grpcFormat is %GRPC_STATUS(X)%'s X.
type grpcFormat uint8

const (
	grpcCamel grpcFormat = iota
	grpcSnake
	grpcNumber
)

// syntax is what an operator accepts after its name, as Envoy's
// CommandSyntaxChecker flags say.
type syntax uint8

const (
	commandOnly    syntax = iota // %NAME%
	headerParams                 // %NAME(X?Y)% or %NAME(X?Y):Z%, X required
	optionalParams               // %NAME% or %NAME(P)%, no length
)

type opSpec struct {
	op      op
	syntax  syntax
	part    addrPart
	numeric bool // rendered as a JSON number when alone in a JSON value
}

// operators are the supported command operators by name. The docs
// (docs/accesslog.md) list exactly these; a test keeps the two in step.
var operators = map[string]opSpec{
	"START_TIME":                                    {op: opStartTime, syntax: optionalParams},
	"REQ":                                           {op: opReq, syntax: headerParams},
	"REQ_WITHOUT_QUERY":                             {op: opReqWithoutQuery, syntax: headerParams},
	"RESP":                                          {op: opResp, syntax: headerParams},
	"TRAILER":                                       {op: opTrailer, syntax: headerParams},
	"RESPONSE_CODE":                                 {op: opResponseCode, numeric: true},
	"RESPONSE_CODE_DETAILS":                         {op: opResponseCodeDetails},
	"RESPONSE_FLAGS":                                {op: opResponseFlags},
	"BYTES_RECEIVED":                                {op: opBytesReceived, numeric: true},
	"BYTES_SENT":                                    {op: opBytesSent, numeric: true},
	"DURATION":                                      {op: opDuration, numeric: true},
	"REQUEST_DURATION":                              {op: opRequestDuration, numeric: true},
	"REQUEST_TX_DURATION":                           {op: opRequestTxDuration, numeric: true},
	"RESPONSE_DURATION":                             {op: opResponseDuration, numeric: true},
	"RESPONSE_TX_DURATION":                          {op: opResponseTxDuration, numeric: true},
	"UPSTREAM_HOST":                                 {op: opUpstreamHost},
	"UPSTREAM_REMOTE_ADDRESS":                       {op: opUpstreamHost},
	"UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":          {op: opUpstreamHost, part: addrNoPort},
	"UPSTREAM_REMOTE_PORT":                          {op: opUpstreamHost, part: addrPort},
	"UPSTREAM_CLUSTER":                              {op: opUpstreamCluster},
	"UPSTREAM_LOCAL_ADDRESS":                        {op: opUpstreamLocal},
	"UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":           {op: opUpstreamLocal, part: addrNoPort},
	"UPSTREAM_LOCAL_PORT":                           {op: opUpstreamLocal, part: addrPort},
	"UPSTREAM_TRANSPORT_FAILURE_REASON":             {op: opUpstreamTransportFailureReason},
	"DOWNSTREAM_REMOTE_ADDRESS":                     {op: opDownstreamRemote},
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":        {op: opDownstreamRemote, part: addrNoPort},
	"DOWNSTREAM_REMOTE_PORT":                        {op: opDownstreamRemote, part: addrPort},
	"DOWNSTREAM_LOCAL_ADDRESS":                      {op: opDownstreamLocal},
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":         {op: opDownstreamLocal, part: addrNoPort},
	"DOWNSTREAM_LOCAL_PORT":                         {op: opDownstreamLocal, part: addrPort},
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS":              {op: opDownstreamDirectRemote},
	"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": {op: opDownstreamDirectRemote, part: addrNoPort},
	"DOWNSTREAM_DIRECT_REMOTE_PORT":                 {op: opDownstreamDirectRemote, part: addrPort},
	"PROTOCOL":                                      {op: opProtocol},
	"UPSTREAM_PROTOCOL":                             {op: opUpstreamProtocol},
	"REQUESTED_SERVER_NAME":                         {op: opRequestedServerName},
	"ROUTE_NAME":                                    {op: opRouteName},
	"HOSTNAME":                                      {op: opHostname},
	"GRPC_STATUS":                                   {op: opGRPCStatus, syntax: optionalParams},
	"GRPC_STATUS_NUMBER":                            {op: opGRPCStatus, numeric: true},
	"CONNECTION_ID":                                 {op: opConnectionID, numeric: true},
	"UPSTREAM_REQUEST_ATTEMPT_COUNT":                {op: opAttemptCount, numeric: true},
	"DOWNSTREAM_TLS_VERSION":                        {op: opDownstreamTLSVersion},
	"DOWNSTREAM_PEER_URI_SAN":                       {op: opDownstreamPeerURISAN},
	"TRACE_ID":                                      {op: opTraceID},
	"SPAN_ID":                                       {op: opSpanID},
}

// seg is one compiled piece of a format: literal text or an operator.
type seg struct {
	op      op
	part    addrPart
	grpc    grpcFormat
	numeric bool
	alt     bool          // names[1] is an alternative header
	max     int           // truncation length; -1: none
	lit     string        // literal text; %HOSTNAME%'s value
	jlit    string        // lit, escaped for a JSON string
	names   [2]HeaderName // header operators: main and alternative
	time    []ttok        // START_TIME
}

// maxLength bounds :Z; Envoy takes any size_t, but no header is longer.
const maxLength = 1 << 30

// parseSegments compiles a format string. It follows Envoy's grammar: a
// '%' starts either "%%" (a literal '%') or an operator
// %NAME(PARAMS):LENGTH% whose NAME is [A-Z0-9_]+, whose PARAMS contain no
// ')', and whose LENGTH is digits; anything else is an error.
func parseSegments(s string) ([]seg, error) {
	var segs []seg
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			l := lit.String()
			segs = append(segs, seg{op: opLiteral, lit: l, jlit: string(appendJSONString(nil, l)), max: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			lit.WriteByte('%')
			i += 2
			continue
		}
		start := i
		j := i + 1
		for j < len(s) && isCommandChar(s[j]) {
			j++
		}
		name := s[i+1 : j]
		var params string
		hasParams := false
		if name != "" && j < len(s) && s[j] == '(' {
			k := strings.IndexByte(s[j+1:], ')')
			if k < 0 {
				return nil, syntaxError(start, "", "no valid command operator here: '(' without ')' (write %% for a literal %)")
			}
			params = s[j+1 : j+1+k]
			hasParams = true
			j += k + 2
		}
		length := -1
		var lengthText string
		if name != "" && j < len(s) && s[j] == ':' {
			k := j + 1
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			if k > j+1 {
				lengthText = s[j+1 : k]
				j = k
			}
		}
		if name == "" || j >= len(s) || s[j] != '%' {
			return nil, syntaxError(start, "", "no valid command operator here (write %% for a literal %)")
		}
		token := s[start : j+1]
		if lengthText != "" {
			n, err := strconv.Atoi(lengthText)
			if err != nil || n > maxLength {
				return nil, syntaxError(start, token, "length "+lengthText+" is too large")
			}
			length = n
		}
		sg, err := compileOperator(name, params, hasParams && params != "", length)
		if err != nil {
			err.Pos, err.Operator = start, token
			return nil, err
		}
		flush()
		segs = append(segs, sg)
		i = j + 1
	}
	flush()
	return segs, nil
}

func isCommandChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func syntaxError(pos int, token, reason string) *ParseError {
	return &ParseError{Pos: pos, Operator: token, Reason: reason, Err: ErrSyntax}
}

// compileOperator checks an operator's parameters and length as Envoy
// does and compiles it. The returned error lacks Pos and Operator.
func compileOperator(name, params string, hasParams bool, length int) (seg, *ParseError) {
	spec, ok := operators[name]
	if !ok {
		return seg{}, &ParseError{Reason: "unknown command operator", Err: ErrUnknownOperator}
	}
	bad := func(reason string) (seg, *ParseError) {
		return seg{}, &ParseError{Reason: reason, Err: ErrSyntax}
	}
	switch spec.syntax {
	case commandOnly:
		if hasParams || length >= 0 {
			return bad(name + " takes no parameters or length")
		}
	case headerParams:
		if !hasParams {
			return bad(name + " needs a header name: " + name + "(X-HEADER)")
		}
	case optionalParams:
		if length >= 0 {
			return bad(name + " takes no length")
		}
	}
	sg := seg{op: spec.op, part: spec.part, numeric: spec.numeric, max: length}
	switch spec.op {
	case opStartTime:
		sg.time = defaultTimeTokens
		if hasParams {
			sg.time = compileTime(params)
		}
	case opReq, opReqWithoutQuery, opResp, opTrailer:
		main, alt, _ := strings.Cut(params, "?")
		if strings.Contains(alt, "?") {
			return bad("more than one alternative header in " + params)
		}
		if !validHeaderName(main) {
			return bad("invalid header name " + strconv.Quote(main))
		}
		if alt != "" && !validHeaderName(alt) {
			return bad("invalid header name " + strconv.Quote(alt))
		}
		sg.names[0] = headerName(main)
		if alt != "" {
			sg.names[1] = headerName(alt)
			sg.alt = true
		}
	case opGRPCStatus:
		if name == "GRPC_STATUS_NUMBER" {
			sg.grpc = grpcNumber
			break
		}
		switch params {
		case "", "CAMEL_STRING":
			sg.grpc = grpcCamel
		case "SNAKE_STRING":
			sg.grpc = grpcSnake
		case "NUMBER":
			sg.grpc, sg.numeric = grpcNumber, true
		default:
			return bad("GRPC_STATUS takes CAMEL_STRING, SNAKE_STRING or NUMBER")
		}
	case opHostname:
		sg.lit = hostname()
	}
	return sg, nil
}

// validHeaderName accepts an HTTP token, or ':' and a token for a
// pseudo-header. Envoy refuses names with characters a header cannot
// have; so do we, which also keeps newlines out of the log.
func validHeaderName(h string) bool {
	h = strings.TrimPrefix(h, ":")
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		if !isTokenChar(h[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func headerName(h string) HeaderName {
	lower := strings.ToLower(h)
	canon := lower
	if !strings.HasPrefix(lower, ":") {
		canon = textproto.CanonicalMIMEHeaderKey(lower)
	}
	return HeaderName{Lower: lower, Canonical: canon}
}

// appendSeg appends one segment: inside a JSON string when inJSON, else
// as text. An unknown value prints "-".
func appendSeg(b []byte, s *seg, e *Entry, inJSON bool) []byte {
	if s.op == opLiteral {
		if inJSON {
			return append(b, s.jlit...)
		}
		return append(b, s.lit...)
	}
	start := len(b)
	b, ok := appendRaw(b, s, e)
	if !ok {
		return append(b[:start], '-')
	}
	if s.max >= 0 && len(b)-start > s.max {
		b = b[:start+s.max]
	}
	if inJSON {
		b = escapeTail(b, start)
	}
	return b
}

// appendTyped appends a JSON value that is exactly one operator: a
// number for the numeric operators, else a string, null when unknown
// (Envoy's typed JSON).
func appendTyped(b []byte, s *seg, e *Entry) []byte {
	start := len(b)
	if !s.numeric {
		b = append(b, '"')
	}
	b, ok := appendRaw(b, s, e)
	if !ok {
		return append(b[:start], "null"...)
	}
	if s.numeric {
		return b
	}
	if s.max >= 0 && len(b)-start-1 > s.max {
		b = b[:start+1+s.max]
	}
	b = escapeTail(b, start+1)
	return append(b, '"')
}

// appendRaw appends the value of an operator unescaped and untruncated,
// or reports that it is unknown (the caller then drops what was
// appended).
func appendRaw(b []byte, s *seg, e *Entry) ([]byte, bool) {
	switch s.op {
	case opStartTime:
		if e.Start.IsZero() {
			return b, false
		}
		return appendTime(b, e.Start, s.time), true
	case opReq, opReqWithoutQuery, opResp, opTrailer:
		return appendHeader(b, s, e)
	case opResponseCode:
		return strconv.AppendInt(b, int64(e.ResponseCode), 10), true
	case opResponseCodeDetails:
		return appendString(b, e.ResponseCodeDetails)
	case opResponseFlags:
		// No flag is the value "-", not an unknown value: Envoy's typed
		// JSON writes "-" here, not null.
		n := len(b)
		if b = e.Flags.AppendTo(b); len(b) == n {
			b = append(b, '-')
		}
		return b, true
	case opBytesReceived:
		return strconv.AppendUint(b, e.BytesReceived, 10), true
	case opBytesSent:
		return strconv.AppendUint(b, e.BytesSent, 10), true
	case opDuration:
		return strconv.AppendInt(b, e.Duration.Milliseconds(), 10), true
	case opRequestDuration:
		return appendMillis(b, e.RequestDuration)
	case opRequestTxDuration:
		return appendMillis(b, e.RequestTxDuration)
	case opResponseDuration:
		return appendMillis(b, e.ResponseDuration)
	case opResponseTxDuration:
		return appendMillis(b, e.ResponseTxDuration)
	case opUpstreamHost:
		return appendHostPort(b, e.UpstreamHost, s.part)
	case opUpstreamCluster:
		return appendString(b, e.UpstreamCluster)
	case opUpstreamLocal:
		return appendAddr(b, e.UpstreamLocal, s.part)
	case opUpstreamTransportFailureReason:
		n := len(b)
		b, ok := appendString(b, e.UpstreamTransportFailureReason)
		for i := n; i < len(b); i++ {
			if b[i] == ' ' {
				b[i] = '_'
			}
		}
		return b, ok
	case opDownstreamRemote:
		return appendAddr(b, e.DownstreamRemote, s.part)
	case opDownstreamLocal:
		return appendAddr(b, e.DownstreamLocal, s.part)
	case opDownstreamDirectRemote:
		a := e.DownstreamDirectRemote
		if !a.IsValid() {
			a = e.DownstreamRemote
		}
		return appendAddr(b, a, s.part)
	case opProtocol:
		return appendString(b, e.Protocol)
	case opUpstreamProtocol:
		return appendString(b, e.UpstreamProtocol)
	case opRequestedServerName:
		return appendString(b, e.RequestedServerName)
	case opRouteName:
		return appendString(b, e.RouteName)
	case opHostname:
		return appendString(b, s.lit)
	case opGRPCStatus:
		return appendGRPCStatus(b, e, s.grpc)
	case opConnectionID:
		return strconv.AppendUint(b, e.ConnectionID, 10), true
	case opAttemptCount:
		return strconv.AppendUint(b, uint64(e.AttemptCount), 10), true
	case opDownstreamTLSVersion:
		return appendString(b, e.DownstreamTLSVersion)
	case opDownstreamPeerURISAN:
		return appendString(b, e.DownstreamPeerURISAN)
	case opTraceID:
		if e.TraceID == [16]byte{} {
			return b, false
		}
		return appendHex(b, e.TraceID[:]), true
	case opSpanID:
		if e.SpanID == [8]byte{} {
			return b, false
		}
		return appendHex(b, e.SpanID[:]), true
	}
	return b, false
}

// appendHex appends lower-case hex, as W3C and OTLP tools print ids.
func appendHex(b, id []byte) []byte {
	const digits = "0123456789abcdef"
	for _, c := range id {
		b = append(b, digits[c>>4], digits[c&0x0f])
	}
	return b
}

func appendString(b []byte, v string) ([]byte, bool) {
	if v == "" {
		return b, false
	}
	return append(b, v...), true
}

func appendMillis(b []byte, d time.Duration) ([]byte, bool) {
	if d == 0 {
		return b, false
	}
	return strconv.AppendInt(b, d.Milliseconds(), 10), true
}

func appendAddr(b []byte, a netip.AddrPort, part addrPart) ([]byte, bool) {
	if !a.IsValid() {
		return b, false
	}
	switch part {
	case addrNoPort:
		return a.Addr().AppendTo(b), true
	case addrPort:
		return strconv.AppendUint(b, uint64(a.Port()), 10), true
	}
	return a.AppendTo(b), true
}

// appendHostPort prints part of a "host:port" string without parsing it
// into an address (it may be a DNS name).
func appendHostPort(b []byte, hp string, part addrPart) ([]byte, bool) {
	if hp == "" {
		return b, false
	}
	if part == addrFull {
		return append(b, hp...), true
	}
	host, port := splitHostPort(hp)
	if part == addrNoPort {
		return appendString(b, host)
	}
	return appendString(b, port)
}

// splitHostPort is net.SplitHostPort without the errors: a string with
// no port is all host.
func splitHostPort(hp string) (host, port string) {
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return hp, ""
		}
		host = hp[1:end]
		if rest := hp[end+1:]; strings.HasPrefix(rest, ":") {
			port = rest[1:]
		}
		return host, port
	}
	i := strings.LastIndexByte(hp, ':')
	if i < 0 || strings.IndexByte(hp[:i], ':') >= 0 {
		return hp, "" // no port, or a bare IPv6 address
	}
	return hp[:i], hp[i+1:]
}

var statusName = HeaderName{Lower: ":status", Canonical: ":status"}

// appendHeader looks up a header operator's main name, then its
// alternative.
func appendHeader(b []byte, s *seg, e *Entry) ([]byte, bool) {
	names := s.names[:1]
	if s.alt {
		names = s.names[:2]
	}
	for i := range names {
		n := &names[i]
		if s.op == opResp && n.Lower == statusName.Lower && e.ResponseCode != 0 {
			return strconv.AppendInt(b, int64(e.ResponseCode), 10), true
		}
		var v string
		var ok bool
		switch s.op {
		case opReq, opReqWithoutQuery:
			v, ok = e.requestHeader(n)
		case opResp:
			v, ok = lookup(e.Response, n)
		case opTrailer:
			v, ok = lookup(e.Trailers, n)
		}
		if !ok {
			continue
		}
		if s.op == opReqWithoutQuery {
			v, _, _ = strings.Cut(v, "?")
		}
		return append(b, v...), true
	}
	return b, false
}

func lookup(h Headers, n *HeaderName) (string, bool) {
	if h == nil {
		return "", false
	}
	return h.Lookup(*n)
}

// requestHeader answers the request pseudo-headers from the Entry and
// asks Request for the rest.
func (e *Entry) requestHeader(n *HeaderName) (string, bool) {
	if strings.HasPrefix(n.Lower, ":") {
		var v string
		switch n.Lower {
		case ":method":
			v = e.Method
		case ":path":
			v = e.Path
		case ":authority":
			v = e.Authority
		case ":scheme":
			v = e.Scheme
		default:
			return lookup(e.Request, n)
		}
		return v, v != ""
	}
	return lookup(e.Request, n)
}

var grpcStatusName = HeaderName{Lower: "grpc-status", Canonical: "Grpc-Status"}

// gRPC status names as Envoy prints them: CAMEL_STRING is Envoy's
// grpcStatusToString, SNAKE_STRING absl's StatusCodeToString.
var (
	grpcCamelNames = [...]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
		"NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
		"Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}
	grpcSnakeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
		"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
		"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}
)

// grpcStatus finds the gRPC status as Envoy does: the grpc-status
// trailer, else the grpc-status header (a trailers-only response), else
// the HTTP status mapped per gRPC's http-grpc-status-mapping.
func (e *Entry) grpcStatus() (uint64, bool) {
	for _, h := range [...]Headers{e.Trailers, e.Response} {
		if v, ok := lookup(h, &grpcStatusName); ok {
			if n, ok := parseDigits(v); ok {
				return n, true
			}
		}
	}
	switch e.ResponseCode {
	case 0:
		return 0, false
	case 400:
		return 13, true // Internal
	case 401:
		return 16, true // Unauthenticated
	case 403:
		return 7, true // PermissionDenied
	case 404:
		return 12, true // Unimplemented
	case 429, 502, 503, 504:
		return 14, true // Unavailable
	}
	return 2, true // Unknown
}

func appendGRPCStatus(b []byte, e *Entry, f grpcFormat) ([]byte, bool) {
	code, ok := e.grpcStatus()
	if !ok {
		return b, false
	}
	if code < uint64(len(grpcCamelNames)) {
		switch f {
		case grpcCamel:
			return append(b, grpcCamelNames[code]...), true
		case grpcSnake:
			return append(b, grpcSnakeNames[code]...), true
		}
	}
	return strconv.AppendUint(b, code, 10), true
}

// parseDigits parses a decimal number without strconv's error value,
// which would allocate on the request path.
func parseDigits(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
