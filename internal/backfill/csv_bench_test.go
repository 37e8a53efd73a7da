package backfill

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// rowsReader generates a CSV export of n rows on the fly (no file, no
// buffer of the whole export), so a benchmark measures the reader alone.
type rowsReader struct {
	n, i int
	buf  strings.Builder
	rest string
}

func (r *rowsReader) Read(p []byte) (int, error) {
	for len(r.rest) < len(p) && r.i <= r.n {
		r.buf.Reset()
		if r.i == 0 {
			r.buf.WriteString("email,status,occurred_at,wording_version,user_agent\n")
		} else {
			fmt.Fprintf(&r.buf, "person%07d@example.com,unsubscribed,2024-03-01 10:%02d:00,v2,\"Mozilla/5.0 (X11, Linux)\"\n", r.i, r.i%60)
		}
		r.rest += r.buf.String()
		r.i++
	}
	if r.rest == "" {
		return 0, io.EOF
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// BenchmarkCSVRows reads a 200,000-row export with Rows (what `import
// csv` streams): rows/s, and the heap in use at the end, which stays
// that of one record whatever the number of rows.
func BenchmarkCSVRows(b *testing.B) {
	const n = 200_000
	var heap uint64
	for b.Loop() {
		rows, err := NewRows(&rowsReader{n: n}, 0, nil, Defaults{Brand: "acme"}, []string{"acme"}, "FR")
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for {
			r, err := rows.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || r.Reject != "" {
				b.Fatal(err, r.Reject)
			}
			got++
		}
		if got != n {
			b.Fatalf("%d rows", got)
		}
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap = ms.HeapInuse
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(heap)/(1<<20), "MiB-heap-after")
}
