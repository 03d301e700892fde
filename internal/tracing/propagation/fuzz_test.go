package propagation

import "testing"

// Each parser must not panic, and what it accepts must write back to a
// header that parses to the same context.

func FuzzParseTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		sc, ok := ParseTraceparent(v)
		if !ok {
			return
		}
		back, ok2 := ParseTraceparent(FormatTraceparent(sc))
		if !ok2 || back != sc {
			t.Fatalf("%q: %+v round-trips to %+v", v, sc, back)
		}
	})
}

func FuzzValidTracestate(f *testing.F) {
	f.Add("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
	f.Add("a@b=c, ,d=e")
	f.Fuzz(func(t *testing.T, v string) {
		// A valid list stays valid beside a traceparent: Extract keeps it.
		if !ValidTracestate(v) {
			return
		}
		h := hdr("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		h["Tracestate"] = []string{v}
		if sc, ok := Extract(h); !ok || sc.TraceState != v {
			t.Fatalf("valid tracestate %q not kept: %+v", v, sc)
		}
	})
}

func FuzzParseB3(f *testing.F) {
	f.Add("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-00f067aa0ba902b7")
	f.Add("a3ce929d0e0e4736-00f067aa0ba902b7")
	f.Add("d")
	f.Add("0")
	f.Fuzz(func(t *testing.T, v string) {
		sc, ok := ParseB3(v)
		if !ok {
			return
		}
		back, ok2 := ParseB3(FormatB3(sc))
		if !ok2 || back != sc {
			t.Fatalf("%q: %+v round-trips to %+v", v, sc, back)
		}
	})
}

func FuzzParseB3Multi(f *testing.F) {
	f.Add("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "1", "")
	f.Add("a3ce929d0e0e4736", "00f067aa0ba902b7", "", "1")
	f.Add("", "", "0", "")
	f.Fuzz(func(t *testing.T, traceID, spanID, sampled, flags string) {
		sc, ok := ParseB3Multi(traceID, spanID, sampled, flags)
		if !ok {
			return
		}
		h := hdr()
		Inject(h, sc, Formats(B3Multi))
		back, ok2 := parseB3Multi(h)
		if !ok2 || back != sc {
			t.Fatalf("%q %q %q %q: %+v round-trips to %+v", traceID, spanID, sampled, flags, sc, back)
		}
	})
}

func FuzzParseXRay(f *testing.F) {
	f.Add("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1")
	f.Add("Sampled=?;Root=1-4bf92f35-77b34da6a3ce929d0e0e4736; Parent=00f067aa0ba902b7;Lineage=a:1")
	f.Add(";;=;Root=")
	f.Fuzz(func(t *testing.T, v string) {
		sc, ok := ParseXRay(v)
		if !ok {
			return
		}
		back, ok2 := ParseXRay(FormatXRay(sc))
		if !ok2 || back != sc {
			t.Fatalf("%q: %+v round-trips to %+v", v, sc, back)
		}
	})
}
