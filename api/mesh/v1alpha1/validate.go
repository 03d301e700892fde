package v1alpha1

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Validation follows the constraints App Mesh's API reference documents
// for each *Spec type (ranges, enumerations, unions, required members), so
// that a document App Mesh accepted is accepted here and a mistake is
// reported before it reaches the store, with the path of the field from the
// document's root. Rules that span resources (references, listener ports
// of another resource) live in references.go.

// The enumerations of App Mesh's API.
var (
	portProtocols     = []string{"http", "http2", "grpc", "tcp"}
	gatewayProtocols  = []string{"http", "http2", "grpc"}
	egressFilterTypes = []string{"ALLOW_ALL", "DROP_ALL"}
	ipPreferences     = []string{"IPv6_PREFERRED", "IPv4_PREFERRED", "IPv4_ONLY", "IPv6_ONLY"}
	dnsResponseTypes  = []string{"LOADBALANCER", "ENDPOINTS"}
	durationUnits     = []string{"s", "ms"}
	tlsModes          = []string{"STRICT", "PERMISSIVE", "DISABLED"}
	httpMethods       = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
	httpSchemes       = []string{"http", "https"}
	httpRetryEvents   = []string{"server-error", "gateway-error", "client-error", "stream-error"}
	tcpRetryEvents    = []string{"connection-error"}
	grpcRetryEvents   = []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}
	enabledDisabled   = []string{"ENABLED", "DISABLED"}
)

// The limits of App Mesh's API.
const (
	kindList             = "Mesh, VirtualNode, VirtualService, VirtualRouter, Route, VirtualGateway, GatewayRoute"
	maxNameLength        = 255
	maxHostnameLabel     = 63
	maxMatchEntries      = 10
	maxHeaderNameLength  = 50
	maxWeightedTargets   = 10
	maxTags              = 50
	maxTagKeyLength      = 128
	maxTagValueLength    = 256
	maxACMAuthorities    = 3
	minHealthThreshold   = 2
	maxHealthThreshold   = 10
	minHealthInterval    = 5000
	maxHealthInterval    = 300000
	minHealthTimeout     = 2000
	maxHealthTimeout     = 60000
	maxRoutePriority     = 1000
	maxPercent           = 100
	maxPort              = 65535
	maxAccessLogText     = 1000
	maxJSONFormatKeySize = 100
)

// Validate checks the resource on its own: its names, its tags and every
// field of its spec. It returns nil or FieldErrors listing every problem,
// each with the field's path from the document's root.
func (r *Resource) Validate() error {
	v := &validator{}
	v.resource(r)
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

// ValidName checks the name of a resource of kind. Names are 1-255
// letters, digits, hyphens, underscores and dots; a virtual service's name
// is also the hostname clients call, so it must be a DNS-like name (labels
// of at most 63 characters separated by single dots). The error is a
// *FieldError for the path "name", so the API can report a bad name given
// in a URL the same way as one given in a document.
func ValidName(kind Kind, name string) error {
	if msg := nameProblem(kind, name); msg != "" {
		return &FieldError{Path: "name", Message: msg}
	}
	return nil
}

func nameProblem(kind Kind, name string) string {
	switch {
	case name == "":
		return "is required"
	case len(name) > maxNameLength:
		return fmt.Sprintf("must be at most %d characters", maxNameLength)
	case name == "." || name == "..":
		// They would be path segments with a meaning in REST URLs.
		return "must not be . or .."
	}
	for _, c := range name {
		if c >= 0x80 || !nameByte(byte(c)) {
			return fmt.Sprintf("must contain only letters, digits, hyphens, underscores and dots, not %q", c)
		}
	}
	if kind == KindVirtualService {
		for label := range strings.SplitSeq(name, ".") {
			switch {
			case label == "":
				return "must be a hostname: no empty labels, no leading, trailing or double dots"
			case len(label) > maxHostnameLabel:
				return fmt.Sprintf("must be a hostname: labels of at most %d characters", maxHostnameLabel)
			}
		}
	}
	return ""
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// validator collects the problems of one resource.
type validator struct {
	errs FieldErrors
}

func (v *validator) add(path, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	v.errs = append(v.errs, &FieldError{Path: path, Message: msg})
}

func (v *validator) required(path string) { v.add(path, "is required") }

// field and index build paths such as spec.listeners[0].portMapping.
func field(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func index(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

// enum checks a required enumerated value.
func (v *validator) enum(path, val string, allowed []string) bool {
	for _, a := range allowed {
		if val == a {
			return true
		}
	}
	v.add(path, "must be one of %s", strings.Join(allowed, ", "))
	return false
}

// optEnum checks an enumerated value that may be left empty.
func (v *validator) optEnum(path, val string, allowed []string) {
	if val != "" {
		v.enum(path, val, allowed)
	}
}

func (v *validator) between(path string, val, lo, hi int64) {
	if val < lo || val > hi {
		v.add(path, "must be between %d and %d", lo, hi)
	}
}

func (v *validator) atLeast(path string, val, lo int64) {
	if val < lo {
		v.add(path, "must be at least %d", lo)
	}
}

func (v *validator) port(path string, p int) { v.between(path, int64(p), 1, maxPort) }

// optPort checks a port that may be left 0 (unset).
func (v *validator) optPort(path string, p int) {
	if p != 0 {
		v.port(path, p)
	}
}

// name checks a name that refers to another resource of kind.
func (v *validator) name(path string, kind Kind, name string) {
	if msg := nameProblem(kind, name); msg != "" {
		v.add(path, "%s", msg)
	}
}

// union checks that exactly one of the named members is set.
func (v *validator) union(path string, names []string, set ...bool) (int, bool) {
	n, which := 0, -1
	for i, s := range set {
		if s {
			n++
			which = i
		}
	}
	if n != 1 {
		v.add(path, "exactly one of %s must be set", strings.Join(names, ", "))
		return -1, false
	}
	return which, true
}

// ---- the resource envelope ----

func (v *validator) resource(r *Resource) {
	if !r.Kind.Valid() {
		v.add("kind", "must be one of %s", kindList)
		return
	}
	v.name("name", r.Kind, r.Name)
	if r.Kind == KindMesh {
		if r.Mesh != "" {
			v.add("mesh", "must not be set on a Mesh")
		}
	} else {
		v.name("mesh", KindMesh, r.Mesh)
	}
	if r.Kind == KindRoute {
		v.name("virtualRouter", KindVirtualRouter, r.VirtualRouter)
	} else if r.VirtualRouter != "" {
		v.add("virtualRouter", "must only be set on a Route")
	}
	if r.Kind == KindGatewayRoute {
		v.name("virtualGateway", KindVirtualGateway, r.VirtualGateway)
	} else if r.VirtualGateway != "" {
		v.add("virtualGateway", "must only be set on a GatewayRoute")
	}
	v.tags(r.Tags)

	for _, k := range Kinds {
		if k != r.Kind && specSet(r, k) {
			v.add("spec", "must hold only a %s spec, not also a %s spec", r.Kind, k)
		}
	}
	switch r.Kind {
	case KindMesh:
		if r.MeshSpec != nil {
			v.mesh("spec", r.MeshSpec)
			return
		}
	case KindVirtualNode:
		if r.VirtualNodeSpec != nil {
			v.virtualNode("spec", r.VirtualNodeSpec)
			return
		}
	case KindVirtualService:
		if r.VirtualServiceSpec != nil {
			v.virtualService("spec", r.VirtualServiceSpec)
			return
		}
	case KindVirtualRouter:
		if r.VirtualRouterSpec != nil {
			v.virtualRouter("spec", r.VirtualRouterSpec)
			return
		}
	case KindRoute:
		if r.RouteSpec != nil {
			v.route("spec", r.RouteSpec)
			return
		}
	case KindVirtualGateway:
		if r.VirtualGatewaySpec != nil {
			v.virtualGateway("spec", r.VirtualGatewaySpec)
			return
		}
	case KindGatewayRoute:
		if r.GatewayRouteSpec != nil {
			v.gatewayRoute("spec", r.GatewayRouteSpec)
			return
		}
	}
	v.required("spec")
}

// specSet reports whether r holds a spec for kind k.
func specSet(r *Resource, k Kind) bool {
	switch k {
	case KindMesh:
		return r.MeshSpec != nil
	case KindVirtualNode:
		return r.VirtualNodeSpec != nil
	case KindVirtualService:
		return r.VirtualServiceSpec != nil
	case KindVirtualRouter:
		return r.VirtualRouterSpec != nil
	case KindRoute:
		return r.RouteSpec != nil
	case KindVirtualGateway:
		return r.VirtualGatewaySpec != nil
	case KindGatewayRoute:
		return r.GatewayRouteSpec != nil
	}
	return false
}

func (v *validator) tags(tags []Tag) {
	if len(tags) > maxTags {
		v.add("tags", "must have at most %d tags", maxTags)
	}
	seen := make(map[string]int, len(tags))
	for i, t := range tags {
		p := index("tags", i)
		switch {
		case t.Key == "":
			v.required(field(p, "key"))
		case len(t.Key) > maxTagKeyLength:
			v.add(field(p, "key"), "must be at most %d characters", maxTagKeyLength)
		default:
			if j, dup := seen[t.Key]; dup {
				v.add(field(p, "key"), "duplicate key %q (also tags[%d])", t.Key, j)
			}
			seen[t.Key] = i
		}
		if len(t.Value) > maxTagValueLength {
			v.add(field(p, "value"), "must be at most %d characters", maxTagValueLength)
		}
	}
}

// ---- Mesh ----

func (v *validator) mesh(p string, s *MeshSpec) {
	if s.EgressFilter != nil {
		v.enum(field(p, "egressFilter.type"), s.EgressFilter.Type, egressFilterTypes)
	}
	if s.ServiceDiscovery != nil {
		v.optEnum(field(p, "serviceDiscovery.ipPreference"), s.ServiceDiscovery.IPPreference, ipPreferences)
	}
	v.meshMeshlens(p, s.Meshlens)
}

// ---- shared pieces ----

func (v *validator) duration(p string, d *Duration) {
	if d == nil {
		v.required(p)
		return
	}
	v.enum(field(p, "unit"), d.Unit, durationUnits)
	if d.Value == nil {
		v.required(field(p, "value"))
	} else {
		v.atLeast(field(p, "value"), *d.Value, 0)
	}
}

func (v *validator) optDuration(p string, d *Duration) {
	if d != nil {
		v.duration(p, d)
	}
}

// portMapping checks a listener's port mapping and returns its protocol
// when it is valid ("" otherwise).
func (v *validator) portMapping(p string, pm *PortMapping, protocols []string) string {
	p = field(p, "portMapping")
	if pm == nil {
		v.required(p)
		return ""
	}
	v.port(field(p, "port"), pm.Port)
	if v.enum(field(p, "protocol"), pm.Protocol, protocols) {
		return pm.Protocol
	}
	return ""
}

// listenerPorts reports listeners that share a port.
type listenerPorts map[int]string

func (lp listenerPorts) check(v *validator, p string, pm *PortMapping) {
	if pm == nil || pm.Port < 1 || pm.Port > maxPort {
		return
	}
	if other, dup := lp[pm.Port]; dup {
		v.add(field(p, "portMapping.port"), "port %d is already used by %s", pm.Port, other)
		return
	}
	lp[pm.Port] = p
}

// protocolBlock checks a union with one member per protocol (connection
// pools, listener timeouts): exactly one member, the listener's protocol.
func (v *validator) protocolBlock(p, protocol string, names []string, set ...bool) {
	which, ok := v.union(p, names, set...)
	if ok && protocol != "" && names[which] != protocol {
		v.add(field(p, names[which]), "does not match the listener protocol %s", protocol)
	}
}

func (v *validator) healthCheck(p string, hc *HealthCheckPolicy, protocols []string) {
	v.between(field(p, "healthyThreshold"), int64(hc.HealthyThreshold), int64(minHealthThreshold), int64(maxHealthThreshold))
	v.between(field(p, "unhealthyThreshold"), int64(hc.UnhealthyThreshold), int64(minHealthThreshold), int64(maxHealthThreshold))
	v.between(field(p, "intervalMillis"), hc.IntervalMillis, int64(minHealthInterval), int64(maxHealthInterval))
	v.between(field(p, "timeoutMillis"), hc.TimeoutMillis, int64(minHealthTimeout), int64(maxHealthTimeout))
	if v.enum(field(p, "protocol"), hc.Protocol, protocols) && (hc.Protocol == "http" || hc.Protocol == "http2") && hc.Path == "" {
		v.add(field(p, "path"), "is required for an %s health check", hc.Protocol)
	}
	v.optPort(field(p, "port"), hc.Port)
}

func (v *validator) outlierDetection(p string, od *OutlierDetection) {
	v.atLeast(field(p, "maxServerErrors"), od.MaxServerErrors, 1)
	v.between(field(p, "maxEjectionPercent"), int64(od.MaxEjectionPercent), 0, int64(maxPercent))
	v.duration(field(p, "interval"), od.Interval)
	v.duration(field(p, "baseEjectionDuration"), od.BaseEjectionDuration)
}

func (v *validator) httpConnectionPool(p string, cp *HTTPConnectionPool) {
	v.atLeast(field(p, "maxConnections"), int64(cp.MaxConnections), 1)
	if cp.MaxPendingRequests != 0 { // 0 is "not set"
		v.atLeast(field(p, "maxPendingRequests"), int64(cp.MaxPendingRequests), 1)
	}
}

func (v *validator) httpTimeout(p string, t *HTTPTimeout) {
	v.optDuration(field(p, "idle"), t.Idle)
	v.optDuration(field(p, "perRequest"), t.PerRequest)
}

func (v *validator) grpcTimeout(p string, t *GRPCTimeout) {
	v.optDuration(field(p, "idle"), t.Idle)
	v.optDuration(field(p, "perRequest"), t.PerRequest)
}

func (v *validator) listenerTLS(p string, t *ListenerTLS) {
	v.enum(field(p, "mode"), t.Mode, tlsModes)
	cp := field(p, "certificate")
	if c := t.Certificate; c == nil {
		v.required(cp)
	} else if which, ok := v.union(cp, []string{"acm", "file", "sds"}, c.ACM != nil, c.File != nil, c.SDS != nil); ok {
		switch which {
		case 0:
			if c.ACM.CertificateArn == "" {
				v.required(field(cp, "acm.certificateArn"))
			}
		case 1:
			v.fileCertificate(field(cp, "file"), c.File)
		case 2:
			v.sds(field(cp, "sds"), c.SDS)
		}
	}
	if val := t.Validation; val != nil {
		vp := field(p, "validation")
		v.subjectAltNames(field(vp, "subjectAlternativeNames"), val.SubjectAlternativeNames)
		tp := field(vp, "trust")
		if tr := val.Trust; tr == nil {
			v.required(tp)
		} else if which, ok := v.union(tp, []string{"file", "sds"}, tr.File != nil, tr.SDS != nil); ok {
			if which == 0 {
				v.fileTrust(field(tp, "file"), tr.File)
			} else {
				v.sds(field(tp, "sds"), tr.SDS)
			}
		}
	}
}

func (v *validator) fileCertificate(p string, f *TLSFileCertificate) {
	if f.CertificateChain == "" {
		v.required(field(p, "certificateChain"))
	}
	if f.PrivateKey == "" {
		v.required(field(p, "privateKey"))
	}
}

func (v *validator) fileTrust(p string, f *TLSValidationFileTrust) {
	if f.CertificateChain == "" {
		v.required(field(p, "certificateChain"))
	}
}

func (v *validator) sds(p string, s *TLSSDSSecret) {
	if s.SecretName == "" {
		v.required(field(p, "secretName"))
	}
}

func (v *validator) subjectAltNames(p string, s *SubjectAlternativeNames) {
	if s == nil {
		return
	}
	mp := field(p, "match")
	if s.Match == nil {
		v.required(mp)
		return
	}
	ep := field(mp, "exact")
	if len(s.Match.Exact) == 0 {
		v.add(ep, "must have at least one name")
	}
	for i, n := range s.Match.Exact {
		if n == "" {
			v.add(index(ep, i), "must not be empty")
		}
	}
}

func (v *validator) clientPolicy(p string, cp *ClientPolicy) {
	if cp == nil || cp.TLS == nil {
		return
	}
	p = field(p, "tls")
	t := cp.TLS
	if c := t.Certificate; c != nil {
		cp := field(p, "certificate")
		if which, ok := v.union(cp, []string{"file", "sds"}, c.File != nil, c.SDS != nil); ok {
			if which == 0 {
				v.fileCertificate(field(cp, "file"), c.File)
			} else {
				v.sds(field(cp, "sds"), c.SDS)
			}
		}
	}
	for i, port := range t.Ports {
		v.port(index(field(p, "ports"), i), port)
	}
	vp := field(p, "validation")
	if t.Validation == nil {
		v.required(vp)
		return
	}
	v.subjectAltNames(field(vp, "subjectAlternativeNames"), t.Validation.SubjectAlternativeNames)
	tp := field(vp, "trust")
	tr := t.Validation.Trust
	if tr == nil {
		v.required(tp)
		return
	}
	which, ok := v.union(tp, []string{"acm", "file", "sds"}, tr.ACM != nil, tr.File != nil, tr.SDS != nil)
	if !ok {
		return
	}
	switch which {
	case 0:
		ap := field(tp, "acm.certificateAuthorityArns")
		if n := len(tr.ACM.CertificateAuthorityArns); n < 1 || n > maxACMAuthorities {
			v.add(ap, "must have between 1 and %d entries", maxACMAuthorities)
		}
		for i, arn := range tr.ACM.CertificateAuthorityArns {
			if arn == "" {
				v.add(index(ap, i), "must not be empty")
			}
		}
	case 1:
		v.fileTrust(field(tp, "file"), tr.File)
	case 2:
		v.sds(field(tp, "sds"), tr.SDS)
	}
}

func (v *validator) accessLog(p string, al *AccessLog) {
	if al == nil {
		return
	}
	fp := field(p, "file")
	f := al.File
	if f == nil {
		v.required(fp)
		return
	}
	if f.Path == "" {
		v.required(field(fp, "path"))
	} else if len(f.Path) > maxNameLength {
		v.add(field(fp, "path"), "must be at most %d characters", maxNameLength)
	}
	if f.Format == nil {
		return
	}
	mp := field(fp, "format")
	which, ok := v.union(mp, []string{"json", "text"}, len(f.Format.JSON) > 0, f.Format.Text != nil)
	if !ok {
		return
	}
	if which == 1 {
		if n := len(*f.Format.Text); n < 1 || n > maxAccessLogText {
			v.add(field(mp, "text"), "must be between 1 and %d characters", maxAccessLogText)
		}
		return
	}
	seen := map[string]int{}
	for i, kv := range f.Format.JSON {
		ep := index(field(mp, "json"), i)
		switch {
		case kv.Key == "":
			v.required(field(ep, "key"))
		case len(kv.Key) > maxJSONFormatKeySize:
			v.add(field(ep, "key"), "must be at most %d characters", maxJSONFormatKeySize)
		default:
			if j, dup := seen[kv.Key]; dup {
				v.add(field(ep, "key"), "duplicate key %q (also %s)", kv.Key, index(field(mp, "json"), j))
			}
			seen[kv.Key] = i
		}
		if kv.Value == "" {
			v.required(field(ep, "value"))
		}
	}
}

// ---- VirtualNode ----

func (v *validator) virtualNode(p string, s *VirtualNodeSpec) {
	v.nodeMeshlens(p, s.Meshlens)
	if s.BackendDefaults != nil {
		v.clientPolicy(field(p, "backendDefaults.clientPolicy"), s.BackendDefaults.ClientPolicy)
	}
	seen := map[string]string{}
	for i, b := range s.Backends {
		bp := index(field(p, "backends"), i)
		vs := b.VirtualService
		if vs == nil {
			v.required(field(bp, "virtualService"))
			continue
		}
		np := field(bp, "virtualService.virtualServiceName")
		if msg := nameProblem(KindVirtualService, vs.VirtualServiceName); msg != "" {
			v.add(np, "%s", msg)
		} else if other, dup := seen[vs.VirtualServiceName]; dup {
			v.add(np, "duplicate backend %s (also %s)", vs.VirtualServiceName, other)
		} else {
			seen[vs.VirtualServiceName] = bp
		}
		v.clientPolicy(field(bp, "virtualService.clientPolicy"), vs.ClientPolicy)
	}
	ports := listenerPorts{}
	for i := range s.Listeners {
		lp := index(field(p, "listeners"), i)
		v.nodeListener(lp, &s.Listeners[i])
		ports.check(v, lp, s.Listeners[i].PortMapping)
	}
	if s.Logging != nil {
		v.accessLog(field(p, "logging.accessLog"), s.Logging.AccessLog)
	}
	v.serviceDiscovery(field(p, "serviceDiscovery"), s.ServiceDiscovery, len(s.Listeners) > 0)
}

func (v *validator) nodeListener(p string, l *Listener) {
	proto := v.portMapping(p, l.PortMapping, portProtocols)
	if cp := l.ConnectionPool; cp != nil {
		cpp := field(p, "connectionPool")
		v.protocolBlock(cpp, proto, portProtocols, cp.HTTP != nil, cp.HTTP2 != nil, cp.GRPC != nil, cp.TCP != nil)
		if cp.HTTP != nil {
			v.httpConnectionPool(field(cpp, "http"), cp.HTTP)
		}
		if cp.HTTP2 != nil {
			v.atLeast(field(cpp, "http2.maxRequests"), int64(cp.HTTP2.MaxRequests), 1)
		}
		if cp.GRPC != nil {
			v.atLeast(field(cpp, "grpc.maxRequests"), int64(cp.GRPC.MaxRequests), 1)
		}
		if cp.TCP != nil {
			v.atLeast(field(cpp, "tcp.maxConnections"), int64(cp.TCP.MaxConnections), 1)
		}
	}
	if l.HealthCheck != nil {
		v.healthCheck(field(p, "healthCheck"), l.HealthCheck, portProtocols)
	}
	if l.OutlierDetection != nil {
		v.outlierDetection(field(p, "outlierDetection"), l.OutlierDetection)
	}
	if t := l.Timeout; t != nil {
		tp := field(p, "timeout")
		v.protocolBlock(tp, proto, portProtocols, t.HTTP != nil, t.HTTP2 != nil, t.GRPC != nil, t.TCP != nil)
		if t.HTTP != nil {
			v.httpTimeout(field(tp, "http"), t.HTTP)
		}
		if t.HTTP2 != nil {
			v.httpTimeout(field(tp, "http2"), t.HTTP2)
		}
		if t.GRPC != nil {
			v.grpcTimeout(field(tp, "grpc"), t.GRPC)
		}
		if t.TCP != nil {
			v.optDuration(field(tp, "tcp.idle"), t.TCP.Idle)
		}
	}
	if l.TLS != nil {
		v.listenerTLS(field(p, "tls"), l.TLS)
	}
	v.listenerMeshlens(p, proto, l.Meshlens)
}

func (v *validator) serviceDiscovery(p string, sd *ServiceDiscovery, hasListeners bool) {
	if sd == nil || (sd.DNS == nil && sd.AWSCloudMap == nil) {
		if hasListeners {
			v.add(p, "is required when the node has listeners")
		}
		return
	}
	if sd.DNS != nil && sd.AWSCloudMap != nil {
		v.add(p, "at most one of dns, awsCloudMap may be set")
		return
	}
	if d := sd.DNS; d != nil {
		dp := field(p, "dns")
		if d.Hostname == "" {
			v.required(field(dp, "hostname"))
		}
		v.optEnum(field(dp, "ipPreference"), d.IPPreference, ipPreferences)
		v.optEnum(field(dp, "responseType"), d.ResponseType, dnsResponseTypes)
	}
	if c := sd.AWSCloudMap; c != nil {
		cp := field(p, "awsCloudMap")
		if c.NamespaceName == "" {
			v.required(field(cp, "namespaceName"))
		}
		if c.ServiceName == "" {
			v.required(field(cp, "serviceName"))
		}
		v.optEnum(field(cp, "ipPreference"), c.IPPreference, ipPreferences)
		for i, a := range c.Attributes {
			ap := index(field(cp, "attributes"), i)
			if a.Key == "" {
				v.required(field(ap, "key"))
			}
			if a.Value == "" {
				v.required(field(ap, "value"))
			}
		}
	}
}

// ---- VirtualService ----

func (v *validator) virtualService(p string, s *VirtualServiceSpec) {
	pr := s.Provider
	if pr == nil {
		return
	}
	pp := field(p, "provider")
	if pr.VirtualNode != nil && pr.VirtualRouter != nil {
		v.add(pp, "at most one of virtualNode, virtualRouter may be set")
		return
	}
	if pr.VirtualNode != nil {
		v.name(field(pp, "virtualNode.virtualNodeName"), KindVirtualNode, pr.VirtualNode.VirtualNodeName)
	}
	if pr.VirtualRouter != nil {
		v.name(field(pp, "virtualRouter.virtualRouterName"), KindVirtualRouter, pr.VirtualRouter.VirtualRouterName)
	}
}

// ---- VirtualRouter ----

func (v *validator) virtualRouter(p string, s *VirtualRouterSpec) {
	lsp := field(p, "listeners")
	if len(s.Listeners) == 0 {
		v.add(lsp, "must have at least one listener")
	}
	ports := listenerPorts{}
	for i, l := range s.Listeners {
		lp := index(lsp, i)
		v.portMapping(lp, l.PortMapping, portProtocols)
		ports.check(v, lp, l.PortMapping)
	}
}

// ---- Route ----

func (v *validator) priority(p string, prio *int) {
	if prio != nil {
		v.between(field(p, "priority"), int64(*prio), 0, int64(maxRoutePriority))
	}
}

func (v *validator) route(p string, s *RouteSpec) {
	v.priority(p, s.Priority)
	which, ok := v.union(p, []string{"httpRoute", "http2Route", "grpcRoute", "tcpRoute"},
		s.HTTPRoute != nil, s.HTTP2Route != nil, s.GRPCRoute != nil, s.TCPRoute != nil)
	if !ok {
		return
	}
	switch which {
	case 0:
		v.httpRoute(field(p, "httpRoute"), s.HTTPRoute)
	case 1:
		v.httpRoute(field(p, "http2Route"), s.HTTP2Route)
	case 2:
		v.grpcRoute(field(p, "grpcRoute"), s.GRPCRoute)
	case 3:
		v.tcpRoute(field(p, "tcpRoute"), s.TCPRoute)
	}
}

func (v *validator) weightedTargets(p string, ts []WeightedTarget) {
	p = field(p, "weightedTargets")
	if len(ts) < 1 || len(ts) > maxWeightedTargets {
		v.add(p, "must have between 1 and %d targets", maxWeightedTargets)
	}
	anyWeight := false
	seen := map[WeightedTarget]int{}
	for i, t := range ts {
		tp := index(p, i)
		v.name(field(tp, "virtualNode"), KindVirtualNode, t.VirtualNode)
		v.between(field(tp, "weight"), int64(t.Weight), 0, int64(maxPercent))
		v.optPort(field(tp, "port"), t.Port)
		if t.Weight > 0 {
			anyWeight = true
		}
		id := WeightedTarget{VirtualNode: t.VirtualNode, Port: t.Port}
		if j, dup := seen[id]; dup && t.VirtualNode != "" {
			v.add(tp, "duplicate target %s (also %s)", t.VirtualNode, index(p, j))
		}
		seen[id] = i
	}
	if len(ts) > 0 && !anyWeight {
		v.add(p, "weights must not all be 0")
	}
}

func (v *validator) httpRoute(p string, r *HTTPRoute) {
	if r.Action == nil {
		v.required(field(p, "action"))
	} else {
		v.weightedTargets(field(p, "action"), r.Action.WeightedTargets)
	}
	if r.Match == nil {
		v.required(field(p, "match"))
	} else {
		v.httpRouteMatch(field(p, "match"), r.Match)
	}
	if rp := r.RetryPolicy; rp != nil {
		rpp := field(p, "retryPolicy")
		v.retryBasics(rpp, rp.MaxRetries, rp.PerRetryTimeout)
		v.events(field(rpp, "httpRetryEvents"), rp.HTTPRetryEvents, httpRetryEvents)
		v.events(field(rpp, "tcpRetryEvents"), rp.TCPRetryEvents, tcpRetryEvents)
		if len(rp.HTTPRetryEvents)+len(rp.TCPRetryEvents) == 0 {
			v.add(rpp, "must set at least one of httpRetryEvents, tcpRetryEvents")
		}
	}
	if r.Timeout != nil {
		v.httpTimeout(field(p, "timeout"), r.Timeout)
	}
	v.routeMeshlens(p, r.Meshlens)
}

func (v *validator) retryBasics(p string, maxRetries *int64, perRetry *Duration) {
	if maxRetries == nil {
		v.required(field(p, "maxRetries"))
	} else {
		v.atLeast(field(p, "maxRetries"), *maxRetries, 0)
	}
	v.duration(field(p, "perRetryTimeout"), perRetry)
}

func (v *validator) events(p string, events, allowed []string) {
	for i, e := range events {
		v.enum(index(p, i), e, allowed)
	}
}

func (v *validator) httpRouteMatch(p string, m *HTTPRouteMatch) {
	if m.Prefix != "" && m.Path != nil || m.Prefix == "" && m.Path == nil {
		v.add(p, "exactly one of prefix, path must be set")
	}
	v.prefix(field(p, "prefix"), m.Prefix)
	if m.Path != nil {
		v.pathMatch(field(p, "path"), m.Path)
	}
	v.optEnum(field(p, "method"), m.Method, httpMethods)
	v.optEnum(field(p, "scheme"), m.Scheme, httpSchemes)
	v.optPort(field(p, "port"), m.Port)
	hp := field(p, "headers")
	if len(m.Headers) > maxMatchEntries {
		v.add(hp, "must have between 1 and %d headers", maxMatchEntries)
	}
	for i, h := range m.Headers {
		v.headerMatcher(index(hp, i), h.Name, h.Match)
	}
	v.queryParameters(field(p, "queryParameters"), m.QueryParameters)
}

func (v *validator) prefix(p, prefix string) {
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		v.add(p, "must start with /")
	}
}

func (v *validator) pathMatch(p string, m *HTTPPathMatch) {
	which, ok := v.union(p, []string{"exact", "regex"}, m.Exact != "", m.Regex != "")
	if !ok {
		return
	}
	if which == 0 && !strings.HasPrefix(m.Exact, "/") {
		v.add(field(p, "exact"), "must start with /")
	}
	if which == 1 {
		v.regex(field(p, "regex"), m.Regex)
	}
}

func (v *validator) regex(p, re string) {
	if _, err := regexp.Compile(re); err != nil {
		v.add(p, "must be a valid regular expression: %v", err)
	}
}

// headerMatcher checks a header or gRPC metadata matcher.
func (v *validator) headerMatcher(p, name string, m *HeaderMatch) {
	switch {
	case name == "":
		v.required(field(p, "name"))
	case len(name) > maxHeaderNameLength:
		v.add(field(p, "name"), "must be at most %d characters", maxHeaderNameLength)
	}
	if m == nil {
		return
	}
	mp := field(p, "match")
	which, ok := v.union(mp, []string{"exact", "prefix", "suffix", "regex", "range"},
		m.Exact != "", m.Prefix != "", m.Suffix != "", m.Regex != "", m.Range != nil)
	if !ok {
		return
	}
	switch which {
	case 3:
		v.regex(field(mp, "regex"), m.Regex)
	case 4:
		if m.Range.Start >= m.Range.End {
			v.add(field(mp, "range"), "start must be less than end")
		}
	}
}

func (v *validator) queryParameters(p string, qs []HTTPQueryParameter) {
	if len(qs) > maxMatchEntries {
		v.add(p, "must have between 1 and %d query parameters", maxMatchEntries)
	}
	for i, q := range qs {
		qp := index(p, i)
		if q.Name == "" {
			v.required(field(qp, "name"))
		}
		if q.Match != nil && q.Match.Exact == "" {
			v.required(field(qp, "match.exact"))
		}
	}
}

func (v *validator) metadata(p string, n int, entry func(i int) (string, *HeaderMatch)) {
	if n > maxMatchEntries {
		v.add(p, "must have between 1 and %d entries", maxMatchEntries)
	}
	for i := range n {
		name, m := entry(i)
		v.headerMatcher(index(p, i), name, m)
	}
}

func (v *validator) grpcRoute(p string, r *GRPCRoute) {
	if r.Action == nil {
		v.required(field(p, "action"))
	} else {
		v.weightedTargets(field(p, "action"), r.Action.WeightedTargets)
	}
	if m := r.Match; m == nil {
		v.required(field(p, "match"))
	} else {
		mp := field(p, "match")
		if m.MethodName != "" && m.ServiceName == "" {
			v.add(field(mp, "methodName"), "requires serviceName")
		}
		v.optPort(field(mp, "port"), m.Port)
		v.metadata(field(mp, "metadata"), len(m.Metadata), func(i int) (string, *HeaderMatch) {
			return m.Metadata[i].Name, m.Metadata[i].Match
		})
	}
	if rp := r.RetryPolicy; rp != nil {
		rpp := field(p, "retryPolicy")
		v.retryBasics(rpp, rp.MaxRetries, rp.PerRetryTimeout)
		v.events(field(rpp, "grpcRetryEvents"), rp.GRPCRetryEvents, grpcRetryEvents)
		v.events(field(rpp, "httpRetryEvents"), rp.HTTPRetryEvents, httpRetryEvents)
		v.events(field(rpp, "tcpRetryEvents"), rp.TCPRetryEvents, tcpRetryEvents)
		if len(rp.GRPCRetryEvents)+len(rp.HTTPRetryEvents)+len(rp.TCPRetryEvents) == 0 {
			v.add(rpp, "must set at least one of grpcRetryEvents, httpRetryEvents, tcpRetryEvents")
		}
	}
	if r.Timeout != nil {
		v.grpcTimeout(field(p, "timeout"), r.Timeout)
	}
	v.routeMeshlens(p, r.Meshlens)
}

func (v *validator) tcpRoute(p string, r *TCPRoute) {
	if r.Action == nil {
		v.required(field(p, "action"))
	} else {
		v.weightedTargets(field(p, "action"), r.Action.WeightedTargets)
	}
	if r.Match != nil {
		v.optPort(field(p, "match.port"), r.Match.Port)
	}
	if r.Timeout != nil {
		v.optDuration(field(p, "timeout.idle"), r.Timeout.Idle)
	}
}

// ---- VirtualGateway ----

func (v *validator) virtualGateway(p string, s *VirtualGatewaySpec) {
	v.nodeMeshlens(p, s.Meshlens)
	lsp := field(p, "listeners")
	if len(s.Listeners) == 0 {
		v.add(lsp, "must have at least one listener")
	}
	ports := listenerPorts{}
	for i, l := range s.Listeners {
		lp := index(lsp, i)
		proto := v.portMapping(lp, l.PortMapping, gatewayProtocols)
		ports.check(v, lp, l.PortMapping)
		if cp := l.ConnectionPool; cp != nil {
			cpp := field(lp, "connectionPool")
			v.protocolBlock(cpp, proto, gatewayProtocols, cp.HTTP != nil, cp.HTTP2 != nil, cp.GRPC != nil)
			if cp.HTTP != nil {
				v.httpConnectionPool(field(cpp, "http"), cp.HTTP)
			}
			if cp.HTTP2 != nil {
				v.atLeast(field(cpp, "http2.maxRequests"), int64(cp.HTTP2.MaxRequests), 1)
			}
			if cp.GRPC != nil {
				v.atLeast(field(cpp, "grpc.maxRequests"), int64(cp.GRPC.MaxRequests), 1)
			}
		}
		if l.HealthCheck != nil {
			v.healthCheck(field(lp, "healthCheck"), l.HealthCheck, gatewayProtocols)
		}
		if l.TLS != nil {
			v.listenerTLS(field(lp, "tls"), l.TLS)
		}
		v.gatewayListenerMeshlens(lp, l.Meshlens)
	}
	if s.BackendDefaults != nil {
		v.clientPolicy(field(p, "backendDefaults.clientPolicy"), s.BackendDefaults.ClientPolicy)
	}
	if s.Logging != nil {
		v.accessLog(field(p, "logging.accessLog"), s.Logging.AccessLog)
	}
}

// ---- GatewayRoute ----

func (v *validator) gatewayRoute(p string, s *GatewayRouteSpec) {
	v.priority(p, s.Priority)
	which, ok := v.union(p, []string{"httpRoute", "http2Route", "grpcRoute"},
		s.HTTPRoute != nil, s.HTTP2Route != nil, s.GRPCRoute != nil)
	if !ok {
		return
	}
	switch which {
	case 0:
		v.httpGatewayRoute(field(p, "httpRoute"), s.HTTPRoute)
	case 1:
		v.httpGatewayRoute(field(p, "http2Route"), s.HTTP2Route)
	case 2:
		v.grpcGatewayRoute(field(p, "grpcRoute"), s.GRPCRoute)
	}
}

func (v *validator) gatewayTarget(p string, t *GatewayRouteTarget) {
	p = field(p, "target")
	if t == nil {
		v.required(p)
		return
	}
	if t.VirtualService == nil {
		v.required(field(p, "virtualService"))
	} else {
		v.name(field(p, "virtualService.virtualServiceName"), KindVirtualService, t.VirtualService.VirtualServiceName)
	}
	v.optPort(field(p, "port"), t.Port)
}

func (v *validator) hostnameMatch(p string, h *GatewayRouteHostnameMatch) {
	if h != nil {
		v.union(p, []string{"exact", "suffix"}, h.Exact != "", h.Suffix != "")
	}
}

func (v *validator) hostnameRewrite(p string, h *GatewayRouteHostnameRewrite) {
	if h != nil {
		v.optEnum(field(p, "defaultTargetHostname"), h.DefaultTargetHostname, enabledDisabled)
	}
}

func (v *validator) httpGatewayRoute(p string, r *HTTPGatewayRoute) {
	v.gatewayRouteMeshlens(p, r.Meshlens)
	m := r.Match
	mp := field(p, "match")
	if m == nil {
		v.required(mp)
	} else {
		switch {
		case m.Prefix != "" && m.Path != nil:
			v.add(mp, "at most one of prefix, path may be set")
		case m.Prefix == "" && m.Path == nil && m.Hostname == nil:
			v.add(mp, "must set at least one of prefix, path, hostname")
		}
		v.prefix(field(mp, "prefix"), m.Prefix)
		if m.Path != nil {
			v.pathMatch(field(mp, "path"), m.Path)
		}
		v.hostnameMatch(field(mp, "hostname"), m.Hostname)
		v.optEnum(field(mp, "method"), m.Method, httpMethods)
		v.optPort(field(mp, "port"), m.Port)
		hp := field(mp, "headers")
		if len(m.Headers) > maxMatchEntries {
			v.add(hp, "must have between 1 and %d headers", maxMatchEntries)
		}
		for i, h := range m.Headers {
			v.headerMatcher(index(hp, i), h.Name, h.Match)
		}
		v.queryParameters(field(mp, "queryParameters"), m.QueryParameters)
	}
	ap := field(p, "action")
	a := r.Action
	if a == nil {
		v.required(ap)
		return
	}
	v.gatewayTarget(ap, a.Target)
	rw := a.Rewrite
	if rw == nil {
		return
	}
	rp := field(ap, "rewrite")
	v.hostnameRewrite(field(rp, "hostname"), rw.Hostname)
	if pr := rw.Prefix; pr != nil {
		pp := field(rp, "prefix")
		if m != nil && m.Prefix == "" {
			v.add(pp, "requires a prefix match")
		}
		if _, ok := v.union(pp, []string{"defaultPrefix", "value"}, pr.DefaultPrefix != "", pr.Value != ""); ok {
			v.optEnum(field(pp, "defaultPrefix"), pr.DefaultPrefix, enabledDisabled)
			if pr.Value != "" && (!strings.HasPrefix(pr.Value, "/") || !strings.HasSuffix(pr.Value, "/")) {
				v.add(field(pp, "value"), "must start and end with /")
			}
		}
	}
	if pa := rw.Path; pa != nil {
		pp := field(rp, "path")
		if m != nil && m.Path == nil {
			v.add(pp, "requires a path match")
		}
		switch {
		case pa.Exact == "":
			v.required(field(pp, "exact"))
		case !strings.HasPrefix(pa.Exact, "/"):
			v.add(field(pp, "exact"), "must start with /")
		}
	}
}

func (v *validator) grpcGatewayRoute(p string, r *GRPCGatewayRoute) {
	v.gatewayRouteMeshlens(p, r.Meshlens)
	if m := r.Match; m == nil {
		v.required(field(p, "match"))
	} else {
		mp := field(p, "match")
		if m.ServiceName == "" && m.Hostname == nil {
			v.add(mp, "must set at least one of serviceName, hostname")
		}
		v.hostnameMatch(field(mp, "hostname"), m.Hostname)
		v.optPort(field(mp, "port"), m.Port)
		v.metadata(field(mp, "metadata"), len(m.Metadata), func(i int) (string, *HeaderMatch) {
			return m.Metadata[i].Name, m.Metadata[i].Match
		})
	}
	ap := field(p, "action")
	if r.Action == nil {
		v.required(ap)
		return
	}
	v.gatewayTarget(ap, r.Action.Target)
	if r.Action.Rewrite != nil {
		v.hostnameRewrite(field(ap, "rewrite.hostname"), r.Action.Rewrite.Hostname)
	}
}
