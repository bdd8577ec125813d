package main

import "bytes"

var (
	key16      = seeded("key16", 16)
	key32      = seeded("key32", 32)
	otherKey32 = seeded("other key32", 32)
	otherKey16 = seeded("other key16", 16)

	// pt150 fills two 64-byte chunks and part of a third.
	pt150 = bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz\n"), 5)[:150]
)

const (
	primaryName = "ppml-primary"
	dataName    = "0f8fad5b-d9cb-469f-a165-70867728950e"
)

// newFile returns a valid file: 64-byte chunks, a KMS reference, a salt
// fixed by the vector's name.
func newFile(name string, key, pt []byte) *file {
	return &file{
		key: key, magic: "KMSSTRM", version: 1, shift: 6,
		refType: 1, ref: kmsRef(primaryName, dataName), refLen: -1,
		salt: seeded("salt/"+name, 32), chunks: split(pt, 6),
	}
}

func success(name, comment string, key, pt []byte, edit func(*file)) vector {
	f := newFile(name, key, pt)
	if edit != nil {
		edit(f)
		f.chunks = split(pt, f.shift)
	}
	return vector{name: name, expect: "success", comment: comment, key: key, plaintext: pt, file: f.bytes()}
}

func successVectors() []vector {
	none := func(f *file) { f.refType, f.ref = 0, nil }
	return []vector{
		success("success_empty", "empty plaintext: one empty last chunk, no key reference", key16, nil, none),
		success("success_short", "one partial last chunk, 32-byte key", key32, []byte("hello, stream\n"), none),
		success("success_one_full_chunk", "exactly one full chunk, which is the last", key32, pt150[:64], nil),
		success("success_three_chunks", "two full chunks and a partial last one, 16-byte KMS data key", key16, pt150, nil),
		success("success_two_full_chunks", "two full chunks, wrapped key reference", key32, pt150[:128], func(f *file) {
			f.refType, f.ref = 2, seeded("wrapped", 60)
		}),
		success("success_default_chunk_size", "64 KiB chunks (chunk_shift 16)", key32, pt150, func(f *file) { f.shift = 16 }),
	}
}

func failure(name, expect, comment string, key []byte, f *file, edit func([]byte) []byte) vector {
	b := f.bytes()
	if edit != nil {
		b = edit(b)
	}
	return vector{name: name, expect: expect, comment: comment, key: key, file: b}
}

func parse(name, comment string, edit func(*file)) vector {
	f := newFile(name, key32, pt150)
	edit(f)
	return failure(name, "parse failure", comment, key32, f, nil)
}

func parseFailureVectors() []vector {
	whole := newFile("parse_truncated", key32, pt150)
	hlen := len(whole.header())
	return []vector{
		parse("parse_bad_magic", "magic KMSSTRN", func(f *file) { f.magic = "KMSSTRN" }),
		parse("parse_version_0", "version 0", func(f *file) { f.version = 0 }),
		parse("parse_version_2", "version 2 (unknown), MAC valid", func(f *file) { f.version = 2 }),
		parse("parse_chunk_shift_5", "32-byte chunks, below the minimum", func(f *file) { f.shift = 5 }),
		parse("parse_chunk_shift_25", "32 MiB chunks, above the maximum", func(f *file) { f.shift = 25 }),
		parse("parse_ref_type_unknown", "key reference type 3", func(f *file) { f.refType, f.ref = 3, []byte("x") }),
		parse("parse_ref_none_with_body", "type none with a body", func(f *file) { f.refType, f.ref = 0, []byte("x") }),
		parse("parse_ref_wrapped_empty", "wrapped key of 0 bytes", func(f *file) { f.refType, f.ref = 2, nil }),
		parse("parse_ref_wrapped_too_long", "wrapped key of 4097 bytes", func(f *file) { f.refType, f.ref = 2, seeded("long", 4097) }),
		parse("parse_ref_kms_bad_lengths", "data key name length one past the body", func(f *file) {
			f.ref = kmsRef(primaryName, dataName)
			f.ref[1+len(primaryName)]++
		}),
		parse("parse_ref_kms_empty_name", "empty primary key name", func(f *file) { f.ref = kmsRef("", dataName) }),
		parse("parse_ref_kms_control_char", "newline in the data key name", func(f *file) { f.ref = kmsRef(primaryName, "data\nkey") }),
		parse("parse_ref_kms_bad_utf8", "invalid UTF-8 in the data key name", func(f *file) { f.ref = kmsRef(primaryName, "key\xff") }),
		failure("parse_empty_file", "parse failure", "zero bytes", key32, whole, func([]byte) []byte { return nil }),
		failure("parse_truncated_in_prefix", "parse failure", "file ends after 10 bytes", key32, whole, cutTo(10)),
		failure("parse_truncated_in_salt", "parse failure", "file ends inside the salt", key32, whole, cutTo(hlen-40)),
		failure("parse_truncated_in_mac", "parse failure", "file ends one byte before the end of the header", key32, whole, cutTo(hlen-1)),
	}
}

func auth(name, comment string, key []byte, f *file, edit func([]byte) []byte) vector {
	return failure(name, "auth failure", comment, key, f, edit)
}

func authFailureVectors() []vector {
	f := func(name string) *file { return newFile(name, key32, pt150) }
	hlen := len(f("x").header())
	sealed := len(pt150[:64]) + 16
	chunks := func(name string, edit func(cs []chunk) []chunk) *file {
		v := f(name)
		v.chunks = edit(v.chunks)
		return v
	}
	return []vector{
		auth("auth_wrong_key", "another 32-byte key", otherKey32, f("auth_wrong_key"), nil),
		auth("auth_wrong_key_16", "a 16-byte key for a file made with a 32-byte key", otherKey16, f("auth_wrong_key_16"), nil),
		auth("auth_header_salt_flipped", "one bit of the salt flipped", key32, f("auth_header_salt_flipped"), flipAt(hlen-40)),
		auth("auth_header_mac_flipped", "one bit of the header MAC flipped", key32, f("auth_header_mac_flipped"), flipAt(hlen-1)),
		auth("auth_header_ref_changed", "data key name edited, still well formed", key32, f("auth_header_ref_changed"), flipBits(12+1+len(primaryName)+1, 0x02)),
		auth("auth_header_chunk_size_changed", "chunk_shift 6 changed to 7 after the MAC", key32, f("auth_header_chunk_size_changed"), flipBits(8, 0x01)),
		auth("auth_chunk_bit_flipped", "one bit of the first chunk's ciphertext flipped", key32, f("auth_chunk_bit_flipped"), flipAt(hlen+3)),
		auth("auth_chunk_tag_flipped", "one bit of the last chunk's tag flipped", key32, f("auth_chunk_tag_flipped"), flipLast()),
		auth("auth_truncated_drop_last_chunk", "file cut at a chunk boundary: last chunk missing", key32, f("auth_truncated_drop_last_chunk"), cutTo(hlen+2*sealed)),
		auth("auth_truncated_mid_chunk", "file cut 10 bytes before its end", key32, f("auth_truncated_mid_chunk"), cutEnd(10)),
		auth("auth_truncated_inside_tag", "last chunk shorter than a tag", key32, f("auth_truncated_inside_tag"), cutTo(hlen+2*sealed+7)),
		auth("auth_no_chunks", "header only, no payload", key32, f("auth_no_chunks"), cutTo(hlen)),
		auth("auth_chunks_reordered", "chunks 0 and 1 swapped", key32, chunks("auth_chunks_reordered", func(cs []chunk) []chunk {
			return []chunk{cs[1], cs[0], cs[2]}
		}), nil),
		auth("auth_chunk_duplicated", "chunk 0 repeated", key32, chunks("auth_chunk_duplicated", func(cs []chunk) []chunk {
			return []chunk{cs[0], cs[0], cs[1], cs[2]}
		}), nil),
		auth("auth_chunk_dropped", "middle chunk removed", key32, chunks("auth_chunk_dropped", func(cs []chunk) []chunk {
			return []chunk{cs[0], cs[2]}
		}), nil),
		auth("auth_appended_chunk", "a fourth chunk, sealed as last, after the real last chunk", key32, chunks("auth_appended_chunk", func(cs []chunk) []chunk {
			return append(cs, chunk{index: 3, last: true, pt: []byte("extra")})
		}), nil),
		auth("auth_appended_bytes", "one byte after the last chunk", key32, f("auth_appended_bytes"), func(b []byte) []byte { return append(b, 0) }),
		auth("auth_last_flag_missing", "every chunk sealed as not last", key32, chunks("auth_last_flag_missing", func(cs []chunk) []chunk {
			cs[2].last = false
			return cs
		}), nil),
		auth("auth_last_flag_early", "first chunk sealed as last, more follow", key32, chunks("auth_last_flag_early", func(cs []chunk) []chunk {
			cs[0].last = true
			return cs
		}), nil),
		auth("auth_empty_final_chunk", "a full chunk followed by an empty last chunk (not canonical)", key32, chunks("auth_empty_final_chunk", func(cs []chunk) []chunk {
			return []chunk{{index: 0, pt: pt150[:64]}, {index: 1, last: true}}
		}), nil),
		auth("auth_empty_stream_not_last", "the single empty chunk sealed as not last", key32, chunks("auth_empty_stream_not_last", func([]chunk) []chunk {
			return []chunk{{index: 0}}
		}), nil),
		auth("auth_counter_starts_at_1", "chunks numbered 1, 2, 3", key32, chunks("auth_counter_starts_at_1", func(cs []chunk) []chunk {
			for i := range cs {
				cs[i].index++
			}
			return cs
		}), nil),
		auth("auth_chunk_from_other_file", "chunk 1 taken from a file with another salt, same key", key32, chunks("auth_chunk_from_other_file", func(cs []chunk) []chunk {
			cs[1].key, cs[1].salt = key32, seeded("another file", 32)
			return cs
		}), nil),
		auth("auth_header_from_other_file", "the header of another file (same key, other salt) on this payload", key32, f("auth_header_from_other_file"), func(b []byte) []byte {
			other := f("another file").header()
			return append(other, b[hlen:]...)
		}),
	}
}

func cutTo(n int) func([]byte) []byte  { return func(b []byte) []byte { return b[:n] } }
func cutEnd(n int) func([]byte) []byte { return func(b []byte) []byte { return b[:len(b)-n] } }
func flipAt(i int) func([]byte) []byte { return flipBits(i, 0x01) }
func flipLast() func([]byte) []byte    { return func(b []byte) []byte { b[len(b)-1] ^= 1; return b } }

func flipBits(i int, mask byte) func([]byte) []byte {
	return func(b []byte) []byte { b[i] ^= mask; return b }
}
