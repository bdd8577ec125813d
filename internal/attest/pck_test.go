package attest

import (
	"encoding/asn1"
	"testing"
)

func TestParseSGXExtension(t *testing.T) {
	t.Parallel()
	want := defaultExt()
	want.TCBComponents[4] = 255
	want.PCESVN = 65535
	got, err := parseSGXExtension(marshalSGXExt(t, &want))
	if err != nil {
		t.Fatal(err)
	}
	if *got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	// Each case rebuilds the extension with one member changed.
	entries := func(t *testing.T) []extEntry {
		var e []extEntry
		if _, err := asn1.Unmarshal(marshalSGXExt(t, &want), &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	enc := func(t *testing.T, v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := map[string]func(t *testing.T) []byte{
		"missing fmspc": func(t *testing.T) []byte { return enc(t, entries(t)[:3]) },
		"duplicate fmspc": func(t *testing.T) []byte {
			e := entries(t)
			return enc(t, append(e, e[3]))
		},
		"short fmspc": func(t *testing.T) []byte {
			e := entries(t)
			e[3].Value = asn1.RawValue{FullBytes: enc(t, []byte{1, 2})}
			return enc(t, e)
		},
		"pceid as integer": func(t *testing.T) []byte {
			e := entries(t)
			e[2].Value = asn1.RawValue{FullBytes: enc(t, 1)}
			return enc(t, e)
		},
		"component svn 256": func(t *testing.T) []byte {
			e := entries(t)
			var tcb []extEntry
			asn1.Unmarshal(e[1].Value.FullBytes, &tcb)
			tcb[0].Value = asn1.RawValue{FullBytes: enc(t, 256)}
			e[1].Value = asn1.RawValue{FullBytes: enc(t, tcb)}
			return enc(t, e)
		},
		"tcb without pcesvn": func(t *testing.T) []byte {
			e := entries(t)
			var tcb []extEntry
			asn1.Unmarshal(e[1].Value.FullBytes, &tcb)
			e[1].Value = asn1.RawValue{FullBytes: enc(t, append(tcb[:16], tcb[17]))}
			return enc(t, e)
		},
		"trailing data":  func(t *testing.T) []byte { return append(marshalSGXExt(t, &want), 0) },
		"not a sequence": func(t *testing.T) []byte { return enc(t, 5) },
	}
	for name, build := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := parseSGXExtension(build(t)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// FuzzSGXExtension: the PCK extension parser never panics.
func FuzzSGXExtension(f *testing.F) {
	e := defaultExt()
	f.Add(marshalSGXExt(f, &e))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseSGXExtension(b)
	})
}
