package v1alpha1

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
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

// FuzzJSONToYAML: any string, as a JSON value, converts to YAML that
// reads back as the same string, or, holding U+0085, is refused.
func FuzzJSONToYAML(f *testing.F) {
	f.Add("del\x7f")
	f.Add("\u0085\u0086\ufffe\uffff")
	f.Add("- yes: no #")
	f.Fuzz(func(t *testing.T, s string) {
		j, err := json.Marshal(map[string]string{"k": s})
		if err != nil {
			t.Fatal(err)
		}
		var back, want map[string]string
		json.Unmarshal(j, &want) // invalid UTF-8 is U+FFFD in both
		y, err := JSONToYAML(j)
		if strings.ContainsRune(want["k"], '\u0085') {
			if err == nil {
				t.Fatalf("%q holds U+0085 and converted: %s", want["k"], y)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if err := yamlv3.Unmarshal(y, &back); err != nil {
			t.Fatalf("read back %s: %v", y, err)
		}
		if back["k"] != want["k"] {
			t.Fatalf("%q came back as %q from\n%s", want["k"], back["k"], y)
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
