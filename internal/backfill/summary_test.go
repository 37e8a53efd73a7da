package backfill

import (
	"strings"
	"testing"

	"github.com/consentsync/consentsync/store"
)

// The summary lists the columns a CSV mapping ignored, in a dry run as in a
// real one (README: unknown columns are listed in the summary), and the
// echoes left out of a provider import.
func TestSummaryPrint(t *testing.T) {
	t.Parallel()
	for _, dry := range []bool{false, true} {
		var b strings.Builder
		Summary{Kind: store.ImportCSV, Name: "crm-export", DryRun: dry, Items: 3, UnknownColumns: []string{"Notes", "Owner"}}.Print(&b)
		if !strings.Contains(b.String(), "ignored columns: [Notes Owner]") {
			t.Errorf("dry run %v: no ignored columns in\n%s", dry, b.String())
		}
	}
	var b strings.Builder
	Summary{Kind: store.ImportProvider, Name: "ses-acme", Items: 6, Withdrawals: 1, Echoes: 5}.Print(&b)
	if out := b.String(); !strings.Contains(out, "echoes:      5 left out") || strings.Contains(out, "ignored columns") {
		t.Errorf("provider import summary:\n%s", out)
	}
}
