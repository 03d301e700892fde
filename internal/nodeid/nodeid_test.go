package nodeid

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    ID
		wantErr string // substring; empty means success
	}{
		{in: "mesh/demo/virtualNode/greeter", want: ID{Mesh: "demo", Kind: VirtualNode, Name: "greeter"}},
		{in: "mesh/demo/virtualGateway/ingress-gw", want: ID{Mesh: "demo", Kind: VirtualGateway, Name: "ingress-gw"}},
		{in: "arn:aws:appmesh:us-west-2:123456789012:mesh/demo/virtualNode/greeter", want: ID{Mesh: "demo", Kind: VirtualNode, Name: "greeter"}},
		{in: "arn:aws-cn:appmesh:cn-north-1:123456789012:mesh/m_1/virtualGateway/gw", want: ID{Mesh: "m_1", Kind: VirtualGateway, Name: "gw"}},
		{in: "arn:aws:appmesh:meshlens:000000000000:mesh/demo/virtualNode/client", want: ID{Mesh: "demo", Kind: VirtualNode, Name: "client"}},
		{in: "arn:aws-us-gov:appmesh:::mesh/a/virtualNode/b", want: ID{Mesh: "a", Kind: VirtualNode, Name: "b"}},
		{in: "", wantErr: "empty"},
		{in: "demo/greeter", wantErr: "want mesh/<mesh>/virtualNode/<name>"},
		{in: "mesh/demo/virtualNode", wantErr: "want mesh/"},
		{in: "mesh/demo/virtualNode/greeter/extra", wantErr: "want mesh/"},
		{in: "mesh//virtualNode/greeter", wantErr: "empty mesh name"},
		{in: "mesh/demo/virtualNode/", wantErr: "empty virtualNode name"},
		{in: "mesh/demo/virtualRouter/r", wantErr: "not a data plane kind"},
		{in: "mesh/demo/VirtualNode/greeter", wantErr: "spelled virtualNode"},
		{in: "mesh/demo/virtualNode/gr eeter", wantErr: "space"},
		{in: "arn:aws:ec2:us-west-2:123456789012:mesh/demo/virtualNode/greeter", wantErr: "service is \"ec2\""},
		{in: "arn:aws:appmesh:us-west-2:mesh/demo/virtualNode/greeter", wantErr: "six colon-separated"},
		{in: "arn::appmesh:r:a:mesh/demo/virtualNode/greeter", wantErr: "empty partition"},
		{in: "mesh/demo/virtualNode/" + strings.Repeat("x", 256), wantErr: "longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	id := ID{Mesh: "demo", Kind: VirtualGateway, Name: "gw"}
	if got, want := id.String(), "mesh/demo/virtualGateway/gw"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	back, err := Parse(id.String())
	if err != nil || back != id {
		t.Fatalf("Parse(String()) = %+v, %v; want %+v", back, err, id)
	}
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    ID
		wantErr string
	}{
		{
			name: "arn wins",
			env: map[string]string{
				EnvResourceARN:     "arn:aws:appmesh:eu-west-1:111122223333:mesh/a/virtualNode/one",
				EnvResourceName:    "mesh/b/virtualNode/two",
				EnvVirtualNodeName: "mesh/c/virtualNode/three",
			},
			want: ID{Mesh: "a", Kind: VirtualNode, Name: "one"},
		},
		{
			name: "resource name next",
			env:  map[string]string{EnvResourceName: "mesh/b/virtualGateway/two", EnvVirtualNodeName: "mesh/c/virtualNode/three"},
			want: ID{Mesh: "b", Kind: VirtualGateway, Name: "two"},
		},
		{
			name: "virtual node name last",
			env:  map[string]string{EnvVirtualNodeName: " mesh/c/virtualNode/three "},
			want: ID{Mesh: "c", Kind: VirtualNode, Name: "three"},
		},
		{
			name:    "malformed first value is an error, not skipped",
			env:     map[string]string{EnvResourceARN: "greeter", EnvResourceName: "mesh/b/virtualNode/two"},
			wantErr: EnvResourceARN,
		},
		{name: "nothing set", env: map[string]string{}, wantErr: "no data plane identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := FromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("FromEnv error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if got != tt.want {
				t.Fatalf("FromEnv = %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := FromEnv(func(string) string { return "" }); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("FromEnv with nothing set = %v, want ErrNoIdentity", err)
	}
}

// FuzzParse checks that Parse never panics, that every identity it
// accepts survives a round trip through String, and that it accepts
// exactly the paths of four slash-separated fields starting with mesh.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"mesh/demo/virtualNode/greeter",
		"mesh/demo/virtualGateway/gw",
		"arn:aws:appmesh:us-west-2:123456789012:mesh/demo/virtualNode/greeter",
		"arn:aws:appmesh:meshlens:000000000000:mesh/demo/virtualGateway/gw",
		"arn:aws:appmesh",
		"mesh/a/b/c/d",
		"mesh/demo/virtualNode/",
		"mesh/demo/virtualNode/a/",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if !strings.HasPrefix(s, "arn:") {
			segs := strings.Split(s, "/")
			if shaped := len(segs) == 4 && segs[0] == "mesh"; !shaped && err == nil {
				t.Fatalf("Parse(%q) accepted a path that is not mesh/<mesh>/<kind>/<name>", s)
			} else if err == nil && (id.Mesh != segs[1] || string(id.Kind) != segs[2] || id.Name != segs[3]) {
				t.Fatalf("Parse(%q) = %+v, want the fields %q", s, id, segs)
			}
		}
		if err != nil {
			return
		}
		back, err := Parse(id.String())
		if err != nil {
			t.Fatalf("Parse(%q) ok, but Parse(String()=%q): %v", s, id.String(), err)
		}
		if back != id {
			t.Fatalf("round trip of %q: %+v != %+v", s, back, id)
		}
	})
}
