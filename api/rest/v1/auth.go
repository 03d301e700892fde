package restv1

import "time"

// Error codes of authentication: no valid token (401), or a token whose
// role or binding does not allow the request (403).
const (
	CodeUnauthorized = "UnauthorizedException"
	CodeForbidden    = "ForbiddenException"
)

// TokenRequest asks for a new token (POST /v1/tokens): a Role, or a Mesh
// (and Node) to bind a proxy's bootstrap token to.
type TokenRequest struct {
	Role        string `json:"role,omitempty"`
	Mesh        string `json:"mesh,omitempty"`
	Node        string `json:"node,omitempty"`
	Description string `json:"description,omitempty"`
}

// TokenInfo describes a token without the token itself.
type TokenInfo struct {
	ID          string    `json:"id"`
	Role        string    `json:"role,omitempty"`
	Mesh        string    `json:"mesh,omitempty"`
	Node        string    `json:"node,omitempty"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
}

// CreatedToken is the answer to a TokenRequest: the token, shown once.
type CreatedToken struct {
	Token string `json:"token"`
	TokenInfo
}

// TokenList is the answer of GET /v1/tokens.
type TokenList struct {
	Items []TokenInfo `json:"items"`
}
