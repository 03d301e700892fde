package restv1

import (
	"time"

	"github.com/meshlens/meshlens/api/mesh/v1alpha1"
)

// Error codes the API returns, App Mesh's exception names.
const (
	CodeBadRequest     = "BadRequestException"
	CodeNotFound       = "NotFoundException"
	CodeConflict       = "ConflictException"
	CodeResourceInUse  = "ResourceInUseException"
	CodeTooLarge       = "PayloadTooLargeException"
	CodeInternal       = "InternalServerErrorException"
	CodeMethodNotAllow = "MethodNotAllowedException"
)

// Error is an error answer of the API. Status is the HTTP status it came
// with; it is not part of the body.
type Error struct {
	Status  int                    `json:"-"`
	Code    string                 `json:"code"`
	Message string                 `json:"message"`
	Details []*v1alpha1.FieldError `json:"details,omitempty"`
}

// Error returns the message, so an *Error is an error a caller can
// branch on with errors.As.
func (e *Error) Error() string { return e.Message }

// Result is the outcome of applying one resource.
type Result struct {
	// Op is what the apply did: "created", "updated", "unchanged", or
	// "valid" in a dry run.
	Op       string             `json:"op"`
	Resource *v1alpha1.Resource `json:"resource"`
}

// ApplyResponse is the answer to an apply.
type ApplyResponse struct {
	Revision uint64   `json:"revision"`
	DryRun   bool     `json:"dryRun,omitempty"`
	Results  []Result `json:"results"`
	// Warnings name what the control plane keeps but cannot translate or
	// enforce, for the applied resources and for others the apply
	// affected: "<Kind> <mesh>/<name>: <field>: <what happens instead>".
	Warnings []string `json:"warnings,omitempty"`
}

// ListResponse is the answer to a list of resources.
type ListResponse struct {
	Items []*v1alpha1.Resource `json:"items"`
}

// Instance is a registered instance of a virtual node, as the API shows it
// and as a registration sends it (Address, Port, HealthStatus,
// TTLSeconds and the Cloud Map fields; the rest is the server's).
type Instance struct {
	Mesh          string            `json:"mesh,omitempty"`
	VirtualNode   string            `json:"virtualNode,omitempty"`
	ID            string            `json:"id,omitempty"`
	Address       string            `json:"address"`
	Port          int               `json:"port"`
	HealthStatus  string            `json:"healthStatus,omitempty"`
	NamespaceName string            `json:"namespaceName,omitempty"`
	ServiceName   string            `json:"serviceName,omitempty"`
	Attributes    map[string]string `json:"attributes,omitempty"`
	TTLSeconds    int               `json:"ttlSeconds,omitempty"`
	RegisteredAt  time.Time         `json:"registeredAt,omitzero"`
	RenewedAt     time.Time         `json:"renewedAt,omitzero"`
	ExpiresAt     time.Time         `json:"expiresAt,omitzero"`
}

// InstanceList is the answer to a list of a virtual node's instances.
type InstanceList struct {
	Items []Instance `json:"items"`
}

// Endpoint is an address the control plane sends traffic to.
type Endpoint struct {
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	Healthy bool   `json:"healthy"`
}

// Proxy is a data plane connected over xDS.
type Proxy struct {
	ID string `json:"id"`
	// Replica is the control-plane replica that holds the proxy's xDS
	// stream (with replicas sharing an etcd store).
	Replica   string `json:"replica,omitempty"`
	Mesh      string `json:"mesh,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Name      string `json:"name,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
	// Flavour is how the control plane serves it: "envoy" (Envoy and
	// meshlens proxy) or "proxyless" (a gRPC client).
	Flavour   string `json:"flavour,omitempty"`
	Proxyless bool   `json:"proxyless,omitempty"`
	Streams   int    `json:"streams"`
	// Acked is the last version the data plane accepted, by type URL.
	Acked map[string]string `json:"acked,omitempty"`
	// Latest is the version of its current view, by type URL: what it
	// has when it is in sync.
	Latest map[string]string `json:"latest,omitempty"`
	// Sync is each type's state, by type URL: SyncSynced, SyncNotSent,
	// SyncStale or SyncNACKed.
	Sync map[string]string `json:"sync,omitempty"`
	// InSync: every type sent has its latest version accepted.
	InSync bool `json:"inSync"`
	Nacks  int  `json:"nacks,omitempty"`
	// LastNack is the reason of the last rejected response, of type
	// LastNackType and version LastNackVersion, at LastNackAt.
	LastNack        string    `json:"lastNack,omitempty"`
	LastNackType    string    `json:"lastNackType,omitempty"`
	LastNackVersion string    `json:"lastNackVersion,omitempty"`
	LastNackAt      time.Time `json:"lastNackAt,omitzero"`
	ConnectedAt     time.Time `json:"connectedAt,omitzero"`
}

// ProxyList is the answer to a list of connected data planes.
type ProxyList struct {
	Items []Proxy `json:"items"`
	// UnreachableReplicas names the control-plane replicas that did not
	// answer: their proxies are missing from Items.
	UnreachableReplicas []string `json:"unreachableReplicas,omitempty"`
}

// The states of one xDS type of a Proxy, as istioctl proxy-status names
// them.
const (
	SyncSynced  = "SYNCED"   // the latest version is accepted
	SyncNotSent = "NOT SENT" // nothing of the type was sent (not subscribed, or nothing yet)
	SyncStale   = "STALE"    // a version was sent and not yet accepted, or an older one is held
	SyncNACKed  = "NACKED"   // the last version sent was rejected
)

// Description is a resource with what surrounds it (the answer to
// GET ...?view=describe).
type Description struct {
	Resource   *v1alpha1.Resource `json:"resource"`
	ReferredBy []v1alpha1.Key     `json:"referredBy"`
	Instances  []Instance         `json:"instances,omitempty"`
	Endpoints  []Endpoint         `json:"endpoints,omitempty"`
	Proxies    []Proxy            `json:"proxies,omitempty"`
	// Warnings name what the control plane keeps of the resource but
	// cannot translate or enforce.
	Warnings []string `json:"warnings,omitempty"`
}
