package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketCA holds the mesh CA's roots, their private keys sealed by the
// CA (package meshca) before they reach the store.
var bucketCA = []byte("ca")

// CASecret returns the value PutCASecret stored under name, or nil.
func (b *Bolt) CASecret(name string) ([]byte, error) {
	var out []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		if bk := tx.Bucket(bucketCA); bk != nil {
			if v := bk.Get([]byte(name)); v != nil {
				out = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read ca %s: %w", name, err)
	}
	return out, nil
}

// PutCASecret stores v under name, durably, unless a value is there
// already (the bucket is created on first use, so stores without a CA
// keep their layout).
func (b *Bolt) PutCASecret(name string, v []byte) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucketCA)
		if err != nil {
			return err
		}
		if bk.Get([]byte(name)) != nil {
			return nil
		}
		return bk.Put([]byte(name), v)
	})
	if err != nil {
		return fmt.Errorf("write ca %s: %w", name, err)
	}
	return nil
}
