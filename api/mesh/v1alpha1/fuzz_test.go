package v1alpha1

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seeds adds the documents of the files under testdata one by one (small
// seeds keep the fuzzer's minimisation of new inputs quick), the smaller
// files whole, and a few documents of every form.
func seeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	forms, _ := filepath.Glob("testdata/forms/*")
	for _, name := range append(files, forms...) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if len(data) < 8<<10 {
			f.Add(data)
		}
		if strings.HasSuffix(name, ".yaml") {
			for _, doc := range bytes.Split(data, []byte("\n---\n")) {
				f.Add(doc)
			}
		}
	}
	for _, s := range bases {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		"",
		"---\n",
		"kind: Mesh\nname: a\n---\n{kind: Mesh, name: b}\n",
		`[{"kind": "Mesh", "name": "a"}]`,
		`{"meshName": "m", "virtualRouterName": "r", "routeName": "x", "spec": {"httpRoute": {}}}`,
		`{"virtualNode": {"meshName": "m", "virtualNodeName": "n", "metadata": {}, "status": {}}}`,
		"Resources:\n  M:\n    Type: AWS::AppMesh::Mesh\n    Properties: {MeshName: !Ref X}\n",
		`{"Type": "AWS::AppMesh::Route", "Properties": {"MeshName": "m", "RouteName": "r", "VirtualRouterName": "v", "Spec": {"TcpRoute": {}}}}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzDecode: decoding never panics, and whatever decodes survives
// Encode and Decode unchanged in both formats.
func FuzzDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Decode(data)
		if err != nil {
			return
		}
		for _, format := range []string{"json", "yaml"} {
			var first bytes.Buffer
			if err := Encode(&first, rs, format); err != nil {
				t.Fatalf("Encode %s of decoded resources: %v", format, err)
			}
			again, err := Decode(first.Bytes())
			if err != nil {
				t.Fatalf("Decode of our own %s: %v\n%s", format, err, first.Bytes())
			}
			var second bytes.Buffer
			if err := Encode(&second, again, format); err != nil {
				t.Fatalf("Encode %s again: %v", format, err)
			}
			if !bytes.Equal(first.Bytes(), second.Bytes()) {
				t.Fatalf("%s round trip changed the resources:\nfirst:  %s\nsecond: %s", format, first.Bytes(), second.Bytes())
			}
		}
	})
}

// FuzzValidate: validation and the reference checks never panic on
// anything that decodes, including deletes of every resource.
func FuzzValidate(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Decode(data)
		if err != nil {
			return
		}
		w := world{}
		var keys []Key
		for _, r := range rs {
			_ = r.Validate()
			w.put(r)
			keys = append(keys, r.Key())
		}
		_ = CheckReferences(w, keys)
		for _, k := range keys {
			_ = Referrers(w, k)
			r := w[k]
			delete(w, k)
			_ = CheckReferences(w, []Key{k})
			w[k] = r
		}
	})
}
