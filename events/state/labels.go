package state

// MatchLabels reports whether every key=value of selector is in labels. An empty selector
// matches nothing, as a Service without a selector selects no pods.
func MatchLabels(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}
