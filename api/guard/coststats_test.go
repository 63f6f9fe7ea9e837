package guard

import (
	"encoding/json"
	"testing"
)

// extensions.cost appended by hand is what json.Marshal writes of it by reflection.
func TestCostStatsJSON(t *testing.T) {
	type plain costStats // without its methods
	for _, s := range []costStats{
		{Requested: 152, Maximum: 10_000},
		{Requested: 0, Maximum: 1, Throttle: &throttleStatus{MaximumAvailable: 300_000, CurrentlyAvailable: 299_848, RestoreRate: 5000}},
		{Requested: 7, Maximum: 10_000, Throttle: &throttleStatus{MaximumAvailable: 6000, CurrentlyAvailable: -3, RestoreRate: 100.0 / 60}},
		{Requested: 7, Maximum: 10_000, Throttle: &throttleStatus{RestoreRate: 1e-9}},
		{Requested: 7, Maximum: 10_000, Throttle: &throttleStatus{RestoreRate: 3e21}},
	} {
		got := string(s.AppendJSON(nil))
		w, _ := json.Marshal(plain(s))
		if got != string(w) {
			t.Errorf("appended %s\nwant     %s", got, w)
		}
		via, _ := json.Marshal(&s)
		if string(via) != got {
			t.Errorf("json.Marshal wrote %s, want %s", via, got)
		}
	}
}
