package main

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/consentsync/consentsync/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.DropTemplate()
	os.Exit(code)
}

func TestParseDays(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "0d": 0, "720h": 720 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := parseDays(in); err != nil || got != want {
			t.Errorf("parseDays(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"d", "-1d", "x", "3w", "110000d"} {
		if _, err := parseDays(bad); err == nil {
			t.Errorf("parseDays(%q) accepted", bad)
		}
	}
}

func TestParseRepushAndReplayIDs(t *testing.T) {
	ids, tasks, err := parseRepushIDs(" 7, push:sendgrid-acme:1796309210600 ,9,,push:x:1")
	if err != nil || !slices.Equal(ids, []int64{7, 9}) || !slices.Equal(tasks, []string{"push:sendgrid-acme:1796309210600", "push:x:1"}) {
		t.Errorf("parseRepushIDs = %v %v %v", ids, tasks, err)
	}
	if _, _, err := parseRepushIDs("7,inbound:3"); err == nil {
		t.Error("repush accepted an inbound task id")
	}
	if ids, err := parseReplayIDs("inbound:42,43"); err != nil || !slices.Equal(ids, []int64{42, 43}) {
		t.Errorf("parseReplayIDs = %v %v", ids, err)
	}
	if _, err := parseReplayIDs("push:a:1"); err == nil {
		t.Error("replay accepted a push task id")
	}
}

func TestAgeOf(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want time.Duration }{
		{6400 * time.Millisecond, 6 * time.Second},
		{59 * time.Second, 59 * time.Second},
		{90 * time.Second, 2 * time.Minute},
		{49*time.Hour + 29*time.Second, 49 * time.Hour},
	} {
		if got := ageOf(c.in); got != c.want {
			t.Errorf("ageOf(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}
