package web

import (
	"testing"
	"time"

	"rassylka/views/clients"
)

// An import whose process died (killed, no shutdown) stops telling its
// progress: its page says it stopped, and how far it got, instead of
// showing a bar that never moves.
func TestImportViewOfAStalledImport(t *testing.T) {
	now := time.Now()
	for _, state := range []string{importWaiting, importRunning} {
		j := &importJob{ID: "id", State: state, Line: 5000, LineRejected: 10, Report: clients.Report{RejectedTotal: 30}, Beat: now.Add(-importStalled + time.Second)}
		if v := importView(j, now); v.Progress == nil || v.Report != nil {
			t.Errorf("%s, told its progress %v ago: %+v, want its progress", state, now.Sub(j.Beat), v)
		}
		j.Beat = now.Add(-importStalled - time.Second)
		v := importView(j, now)
		if v.Progress != nil || v.Report == nil || v.Stopped == "" || v.StoppedAt != 5000 {
			t.Errorf("%s, told its progress %v ago: %+v, want it stopped after line 5000", state, now.Sub(j.Beat), v)
		} else if v.Report.RejectedTotal != 10 {
			t.Errorf("%s, stalled after line 5000: %d rejected, want the 10 up to that line", state, v.Report.RejectedTotal)
		}
	}
	j := &importJob{ID: "id", State: importDone, Line: 5000, Beat: now.Add(-time.Hour)}
	if v := importView(j, now); v.Report == nil || v.Stopped != "" {
		t.Errorf("an import that ended an hour ago: %+v, want its report", v)
	}
}
