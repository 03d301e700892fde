package store

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// caSecretTimeout bounds one read or write of a CA secret in etcd.
const caSecretTimeout = 10 * time.Second

// caKey is where the mesh CA's secret name lives: beside the records,
// not under them, so a re-list of the records never meets it.
func (e *Etcd) caKey(name string) string { return e.Prefix() + "ca/" + name }

// CASecret returns the value PutCASecret stored under name, or nil; the
// read is linearizable, so a root another replica stored is seen.
func (e *Etcd) CASecret(name string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), caSecretTimeout)
	defer cancel()
	resp, err := e.client.Get(ctx, e.caKey(name))
	if err != nil {
		return nil, fmt.Errorf("read ca %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

// PutCASecret stores v under name unless a value is there already: the
// first replica to store a mesh's root wins, and the others read it back
// (the CA re-reads after writing).
func (e *Etcd) PutCASecret(name string, v []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), caSecretTimeout)
	defer cancel()
	k := e.caKey(name)
	_, err := e.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(v))).
		Commit()
	if err != nil {
		return fmt.Errorf("write ca %s: %w", name, err)
	}
	return nil
}
