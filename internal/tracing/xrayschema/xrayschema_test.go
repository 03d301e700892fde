package xrayschema

import (
	"strings"
	"testing"
)

const good = `{"name":"demo/greeter","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979",
"start_time":1478293361.271,"end_time":1478293361.449,"origin":"AWS::AppMesh::Proxy",
"http":{"request":{"method":"GET","url":"http://greeter/","client_ip":"10.0.0.1"},"response":{"status":200}},
"aws":{"app_mesh":{"mesh_name":"demo","virtual_node_name":"greeter"}},
"annotations":{"meshlens_route":"greet","meshlens_retry_count":1,"ok":true},
"subsegments":[{"name":"name","id":"70de5b6f19ff9a0b","start_time":1478293361.3,"end_time":1478293361.4,"namespace":"remote"}]}`

const goodSub = `{"type":"subsegment","name":"name.demo.local","id":"70de5b6f19ff9a0b","parent_id":"70de5b6f19ff9a0a",
"trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1478293361.3,"in_progress":true,"namespace":"remote",
"http":{"request":{"method":"GET","traced":true}}}`

func TestDocument(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		// want is a substring of the error; empty for a valid document.
		want string
	}{
		{"segment", good, ""},
		{"independent subsegment in progress", goodSub, ""},
		{"no name", strings.Replace(good, `"name":"demo/greeter",`, "", 1), "name: required"},
		{"name with a bad character", strings.Replace(good, `demo/greeter`, `demo<greeter>`, 1), "name:"},
		{"short id", strings.Replace(good, `70de5b6f19ff9a0a`, `70de5b6f`, 1), "id:"},
		{"upper-case id", strings.Replace(good, `70de5b6f19ff9a0a`, `70DE5B6F19FF9A0A`, 1), "id:"},
		{"W3C trace id", strings.Replace(good, `1-581cf771-a006649127e371903a2de979`, `581cf771a006649127e371903a2de979`, 1), "trace_id:"},
		{"no trace id", strings.Replace(good, `"trace_id":"1-581cf771-a006649127e371903a2de979",`, "", 1), "trace_id: required"},
		{"no end time", strings.Replace(good, `"end_time":1478293361.449,`, "", 1), "end_time: required"},
		{"end before start", strings.Replace(good, `1478293361.449`, `1478293360`, 1), "before start_time"},
		{"start as a string", strings.Replace(good, `1478293361.271`, `"1478293361.271"`, 1), "start_time:"},
		{"subsegment without parent", strings.Replace(goodSub, `"parent_id":"70de5b6f19ff9a0a",`, "", 1), "parent_id: required"},
		{"bad parent id", strings.Replace(goodSub, `"parent_id":"70de5b6f19ff9a0a"`, `"parent_id":"xyz"`, 1), "parent_id:"},
		{"nested subsegment without id", strings.Replace(good, `"id":"70de5b6f19ff9a0b",`, "", 1), "subsegments[0].id: required"},
		{"annotation key with a dot", strings.Replace(good, `"meshlens_route"`, `"meshlens.route"`, 1), "annotations.meshlens.route"},
		{"annotation object", strings.Replace(good, `"ok":true`, `"ok":{}`, 1), "annotations.ok"},
		{"status as text", strings.Replace(good, `"status":200`, `"status":"200"`, 1), "http.response.status"},
		{"status out of range", strings.Replace(good, `"status":200`, `"status":42`, 1), "not an HTTP status"},
		{"traced on a segment", strings.Replace(good, `"client_ip":"10.0.0.1"`, `"traced":true`, 1), "request.traced"},
		{"fault as text", strings.Replace(good, `"origin"`, `"fault":"yes","origin"`, 1), "fault:"},
		{"bad namespace", strings.Replace(goodSub, `"namespace":"remote"`, `"namespace":"local"`, 1), "namespace:"},
		{"both node and gateway", strings.Replace(good, `"virtual_node_name":"greeter"`, `"virtual_node_name":"greeter","virtual_gateway_name":"gw"`, 1), "exactly one"},
		{"no mesh name", strings.Replace(good, `"mesh_name":"demo",`, "", 1), "mesh_name"},
		{"not JSON", `{"name":`, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Document([]byte(tc.doc))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid document refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestDatagram(t *testing.T) {
	if _, err := Datagram([]byte(Header + good)); err != nil {
		t.Fatal(err)
	}
	if _, err := Datagram([]byte(good)); err == nil || !strings.Contains(err.Error(), "header") {
		t.Fatalf("datagram without header: %v", err)
	}
	if _, err := Datagram([]byte(Header + strings.Repeat(" ", MaxDatagram) + good)); err == nil {
		t.Fatal("oversized datagram accepted")
	}
}

func FuzzDatagram(f *testing.F) {
	f.Add([]byte(Header + good))
	f.Add([]byte(Header + goodSub))
	f.Add([]byte(Header + `{"subsegments":[1,{"http":[]}],"aws":{"app_mesh":3},"annotations":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Datagram(b)
		if err == nil && m == nil {
			t.Fatal("no document and no error")
		}
	})
}
