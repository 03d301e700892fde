package meshmetrics

// Caller is the virtual node (or gateway) that sent the edge's requests,
// empty when the mesh does not know it.
func (e *Edge) Caller() string { return e.labels.srcWorkload }

// Service is the virtual service the edge's requests were sent to.
func (e *Edge) Service() string { return e.labels.dstService }

// Route is the route the edge's requests were sent by: on the called
// side, the caller's route (from its x-meshlens-source header).
func (e *Edge) Route() string { return e.labels.route }
