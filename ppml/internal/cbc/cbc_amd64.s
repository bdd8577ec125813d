//go:build amd64 && !purego

#include "textflag.h"

// AES-CBC with AES-NI. Round keys are 16-byte blocks at rk: nr+1 of them
// (nr = 10, 12 or 14). The SSE forms of AESENC and PXOR fault on memory
// operands that are not 16-byte aligned, and Go does not align rk, so every
// operand is first loaded into a register with MOVUPS.
//
// Registers avoid X15, which Go's internal ABI keeps at zero.

// func encryptBlocks(nr int, rk *byte, iv *[16]byte, dst, src *byte, n int)
//
// CBC encryption is serial: each block waits for the previous ciphertext.
// The loop's critical path is one PXOR and nr AES rounds per block, so the
// round keys stay in registers (X1-X10 hold keys 0-9, X11 key nr) and the
// plaintext is XORed with key 0 before it meets the chain.
TEXT ·encryptBlocks(SB), NOSPLIT, $0-48
	MOVQ nr+0(FP), CX
	MOVQ rk+8(FP), AX
	MOVQ iv+16(FP), BX
	MOVQ dst+24(FP), DI
	MOVQ src+32(FP), SI
	MOVQ n+40(FP), DX

	MOVUPS 0(AX), X1
	MOVUPS 16(AX), X2
	MOVUPS 32(AX), X3
	MOVUPS 48(AX), X4
	MOVUPS 64(AX), X5
	MOVUPS 80(AX), X6
	MOVUPS 96(AX), X7
	MOVUPS 112(AX), X8
	MOVUPS 128(AX), X9
	MOVUPS 144(AX), X10
	MOVQ   CX, R8
	SHLQ   $4, R8
	MOVUPS (AX)(R8*1), X11 // key nr
	MOVUPS (BX), X0        // chaining value

enc:
	MOVUPS (SI), X12
	PXOR   X1, X12 // plaintext ^ key 0, off the critical path
	PXOR   X12, X0
	AESENC X2, X0
	AESENC X3, X0
	AESENC X4, X0
	AESENC X5, X0
	AESENC X6, X0
	AESENC X7, X0
	AESENC X8, X0
	AESENC X9, X0
	AESENC X10, X0
	CMPQ   CX, $10
	JEQ    enclast
	MOVUPS 160(AX), X12 // AES-192 and AES-256: keys 10, 11
	AESENC X12, X0
	MOVUPS 176(AX), X12
	AESENC X12, X0
	CMPQ   CX, $12
	JEQ    enclast
	MOVUPS 192(AX), X12 // AES-256: keys 12, 13
	AESENC X12, X0
	MOVUPS 208(AX), X12
	AESENC X12, X0

enclast:
	AESENCLAST X11, X0
	MOVUPS     X0, (DI) // after the load from SI, so dst may equal src
	ADDQ       $16, SI
	ADDQ       $16, DI
	DECQ       DX
	JNZ        enc

	MOVUPS X0, (BX)
	RET

// DEC8 runs one decryption round with the key at k on blocks X0-X7.
#define DEC8(k) \
	MOVUPS k, X8; \
	AESDEC X8, X0; \
	AESDEC X8, X1; \
	AESDEC X8, X2; \
	AESDEC X8, X3; \
	AESDEC X8, X4; \
	AESDEC X8, X5; \
	AESDEC X8, X6; \
	AESDEC X8, X7

// func decryptBlocks(nr int, rk *byte, iv *[16]byte, dst, src *byte, n int)
//
// CBC decryption is parallel: P[i] = D(C[i]) ^ C[i-1]. Eight blocks at a
// time keep the AES unit busy (each AESDEC has a latency of several cycles
// but the unit accepts one or two a cycle); the rest go one at a time.
// The inverse-cipher keys come from memory as each round needs them. Every
// load from src happens before the stores to dst, so dst may equal src.
// X9 holds the chaining value, X10 key 0 and X11 key nr.
TEXT ·decryptBlocks(SB), NOSPLIT, $0-48
	MOVQ nr+0(FP), CX
	MOVQ rk+8(FP), AX
	MOVQ iv+16(FP), BX
	MOVQ dst+24(FP), DI
	MOVQ src+32(FP), SI
	MOVQ n+40(FP), DX

	MOVUPS (BX), X9
	MOVUPS 0(AX), X10
	MOVQ   CX, R8
	SHLQ   $4, R8
	MOVUPS (AX)(R8*1), X11

	CMPQ DX, $8
	JB   dec1

dec8:
	MOVUPS 0(SI), X0
	MOVUPS 16(SI), X1
	MOVUPS 32(SI), X2
	MOVUPS 48(SI), X3
	MOVUPS 64(SI), X4
	MOVUPS 80(SI), X5
	MOVUPS 96(SI), X6
	MOVUPS 112(SI), X7
	PXOR   X10, X0
	PXOR   X10, X1
	PXOR   X10, X2
	PXOR   X10, X3
	PXOR   X10, X4
	PXOR   X10, X5
	PXOR   X10, X6
	PXOR   X10, X7
	DEC8(16(AX))
	DEC8(32(AX))
	DEC8(48(AX))
	DEC8(64(AX))
	DEC8(80(AX))
	DEC8(96(AX))
	DEC8(112(AX))
	DEC8(128(AX))
	DEC8(144(AX))
	CMPQ CX, $10
	JEQ  dec8last
	DEC8(160(AX))
	DEC8(176(AX))
	CMPQ CX, $12
	JEQ  dec8last
	DEC8(192(AX))
	DEC8(208(AX))

dec8last:
	AESDECLAST X11, X0
	AESDECLAST X11, X1
	AESDECLAST X11, X2
	AESDECLAST X11, X3
	AESDECLAST X11, X4
	AESDECLAST X11, X5
	AESDECLAST X11, X6
	AESDECLAST X11, X7
	PXOR       X9, X0 // chain: block i takes ciphertext i-1
	MOVUPS     0(SI), X8
	PXOR       X8, X1
	MOVUPS     16(SI), X8
	PXOR       X8, X2
	MOVUPS     32(SI), X8
	PXOR       X8, X3
	MOVUPS     48(SI), X8
	PXOR       X8, X4
	MOVUPS     64(SI), X8
	PXOR       X8, X5
	MOVUPS     80(SI), X8
	PXOR       X8, X6
	MOVUPS     96(SI), X8
	PXOR       X8, X7
	MOVUPS     112(SI), X9 // chaining value for the next group
	MOVUPS     X0, 0(DI)
	MOVUPS     X1, 16(DI)
	MOVUPS     X2, 32(DI)
	MOVUPS     X3, 48(DI)
	MOVUPS     X4, 64(DI)
	MOVUPS     X5, 80(DI)
	MOVUPS     X6, 96(DI)
	MOVUPS     X7, 112(DI)
	ADDQ       $128, SI
	ADDQ       $128, DI
	SUBQ       $8, DX
	CMPQ       DX, $8
	JAE        dec8

dec1:
	TESTQ DX, DX
	JZ    done

dec1loop:
	MOVUPS (SI), X1 // ciphertext, the next chaining value
	MOVO   X1, X0
	PXOR   X10, X0
	MOVQ   $16, R9

dec1round: // rounds 1 to nr-1; at most 7 blocks take this loop per call
	MOVUPS (AX)(R9*1), X8
	AESDEC X8, X0
	ADDQ   $16, R9
	CMPQ   R9, R8
	JB     dec1round
	AESDECLAST X11, X0
	PXOR       X9, X0
	MOVO       X1, X9
	MOVUPS     X0, (DI)
	ADDQ       $16, SI
	ADDQ       $16, DI
	DECQ       DX
	JNZ        dec1loop

done:
	MOVUPS X9, (BX)
	RET
