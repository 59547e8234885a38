package libc

// Graphlake's build replaces musl's memcmp and memcpy loops with the Go runtime's
// (scripts/ferretdb/patch.py, step 7). These check them against C's definitions.

import (
	"bytes"
	"math/rand"
	"testing"
	"unsafe"
)

func graphlakeSign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func graphlakeAddr(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

func TestGraphlakeMemcmp(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 20000; i++ {
		n := r.Intn(300)
		a := make([]byte, n+1)
		r.Read(a)
		b := append([]byte(nil), a...)
		if n > 0 && r.Intn(3) > 0 { // mostly a difference, anywhere, either way (bytes compare unsigned, as C's do)
			at := r.Intn(n)
			b[at] = byte(r.Intn(256))
		}
		// Compared from an offset too: SQLite compares inside its buffers, unaligned.
		off := 0
		if n > 0 {
			off = r.Intn(2)
		}
		want := bytes.Compare(a[off:n], b[off:n])
		got := Xmemcmp(nil, graphlakeAddr(a[off:]), graphlakeAddr(b[off:]), Tsize_t(n-off))
		if graphlakeSign(int(got)) != want {
			t.Fatalf("memcmp(%x, %x, %d) = %d, want the sign of %d", a[off:n], b[off:n], n-off, got, want)
		}
	}
	if got := Xmemcmp(nil, 0, 0, 0); got != 0 {
		t.Fatalf("memcmp of nothing = %d", got)
	}
	hi, lo := []byte{0x80}, []byte{0x7f}
	if Xmemcmp(nil, graphlakeAddr(hi), graphlakeAddr(lo), 1) <= 0 {
		t.Fatal("memcmp compares bytes as unsigned char")
	}
}

func TestGraphlakeMemcpy(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for i := 0; i < 5000; i++ {
		n := r.Intn(300)
		src := make([]byte, n+8)
		r.Read(src)
		dst := make([]byte, n+8)
		off := r.Intn(8)
		if n+off > len(src) {
			off = 0
		}
		dest := graphlakeAddr(dst[off:])
		if got := Xmemcpy(nil, dest, graphlakeAddr(src[off:]), Tsize_t(n)); got != dest {
			t.Fatalf("memcpy returned %x, not dest %x", got, dest)
		}
		if !bytes.Equal(dst[off:off+n], src[off:off+n]) {
			t.Fatalf("memcpy of %d bytes at offset %d copied %x, not %x", n, off, dst[off:off+n], src[off:off+n])
		}
		for j, c := range dst { // nothing outside the n bytes is touched
			if (j < off || j >= off+n) && c != 0 {
				t.Fatalf("memcpy of %d bytes at offset %d wrote byte %d", n, off, j)
			}
		}
	}
}
