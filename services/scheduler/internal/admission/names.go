package admission

import (
	"fmt"
	"strings"
)

// Names in Skiff become NATS subject tokens (skiff.ev.pod.<namespace>.<name>), so object names are
// DNS-1123 labels: no dots, unlike Kubernetes, which allows subdomains for most kinds.

const maxLabelLen = 63

func isAlnumLower(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func isAlnum(c byte) bool { return isAlnumLower(c) || c >= 'A' && c <= 'Z' }

// checkDNSLabel returns why s is not a DNS-1123 label, or "".
func checkDNSLabel(s string) string {
	const want = "must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. \"my-name\")"
	switch {
	case s == "":
		return "required value"
	case len(s) > maxLabelLen:
		return fmt.Sprintf("%q is %d characters long: %s", s, len(s), want)
	case strings.Contains(s, "."):
		return fmt.Sprintf("%q contains '.': %s; names become NATS subject tokens, so dots are not allowed", s, want)
	case strings.ToLower(s) != s && isDNSLabel(strings.ToLower(s)):
		return fmt.Sprintf("%q has upper-case letters: %s", s, want)
	case !isDNSLabel(s):
		return fmt.Sprintf("%q %s", s, want)
	}
	return ""
}

func isDNSLabel(s string) bool {
	if s == "" || len(s) > maxLabelLen || !isAlnumLower(s[0]) || !isAlnumLower(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnumLower(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// isDNSSubdomain: dot-separated DNS-1123 labels, at most 253 characters (label key prefixes).
func isDNSSubdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if !isDNSLabel(part) {
			return false
		}
	}
	return true
}

// isLabelValueText: alphanumerics at both ends, '-', '_', '.' inside (a label value or the name
// part of a qualified name).
func isLabelValueText(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// checkQualifiedName returns why s is not a label or annotation key ([prefix/]name), or "".
func checkQualifiedName(s string) string {
	if s == "" {
		return "key must not be empty"
	}
	prefix, name, hasPrefix := strings.Cut(s, "/")
	if hasPrefix {
		if !isDNSSubdomain(prefix) {
			return fmt.Sprintf("key %q: prefix %q must be a DNS-1123 subdomain (e.g. \"example.com\")", s, prefix)
		}
	} else {
		name = prefix
	}
	if name == "" || len(name) > maxLabelLen || !isLabelValueText(name) {
		return fmt.Sprintf("key %q: name part must be at most 63 characters: letters, digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. \"app.kubernetes.io/name\")", s)
	}
	return ""
}

// checkLabelValue returns why v is not a label value, or "".
func checkLabelValue(v string) string {
	if v == "" {
		return ""
	}
	if len(v) > maxLabelLen || !isLabelValueText(v) {
		return fmt.Sprintf("value %q must be empty or at most 63 characters: letters, digits, '-', '_' or '.', starting and ending with a letter or digit", v)
	}
	return ""
}

// checkPortName returns why s is not an IANA service name (a named port), or "".
func checkPortName(s string) string {
	const want = "must be at most 15 lowercase letters, digits and '-', with at least one letter, no '-' at either end and no \"--\" (e.g. \"http\")"
	if s == "" {
		return "required value"
	}
	ok := len(s) <= 15 && s[0] != '-' && s[len(s)-1] != '-' && !strings.Contains(s, "--")
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			letter = true
		case c >= '0' && c <= '9', c == '-':
		default:
			ok = false
		}
	}
	if !ok || !letter {
		return fmt.Sprintf("port name %q %s", s, want)
	}
	return ""
}
