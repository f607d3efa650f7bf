// Package metricstest reads what a Skiff process serves on /metrics, for tests: it scrapes the
// text format, parses it with the Prometheus parser, and sums samples by name and labels.
package metricstest

import (
	"context"
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are a scrape's metric families by name.
type Families map[string]*dto.MetricFamily

// Parse parses Prometheus text format.
func Parse(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return fams, nil
}

// Scrape gets url (http://HOST:PORT/metrics) with client (nil: http.DefaultClient) and parses
// it.
func Scrape(ctx context.Context, client *http.Client, url string) (Families, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("scrape %s: %s: %s", url, resp.Status, b)
	}
	return Parse(resp.Body)
}

// Value is the sum, over the samples of family name whose labels include every pair of
// labels (name, value, name, value...), of a counter's or gauge's value, or a histogram's
// count; ok is false when the family is missing. Use Sum for a histogram's sum.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	return f.value(name, false, labels)
}

// Sum is like Value, but of a histogram's sum of observations.
func (f Families) Sum(name string, labels ...string) (v float64, ok bool) {
	return f.value(name, true, labels)
}

func (f Families) value(name string, sum bool, labels []string) (float64, bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
	total := 0.0
	for _, m := range fam.GetMetric() {
		if !matches(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil && sum:
			total += m.GetHistogram().GetSampleSum()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			total += m.GetUntyped().GetValue()
		}
	}
	return total, true
}

func matches(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
