package client

import "testing"

// The config file's path comes from the environment the command was given and nothing else, so
// a test's commands never read the config of the user who runs the tests.
func TestDefaultConfigPath(t *testing.T) {
	t.Setenv("HOME", "/home/someone")
	t.Setenv("XDG_CONFIG_HOME", "/home/someone/.xdg")
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"XDG_CONFIG_HOME", map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/skiff/config"},
		{"HOME", map[string]string{"HOME": "/h"}, "/h/.config/skiff/config"},
		{"neither", map[string]string{}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultConfigPath(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("DefaultConfigPath = %q, want %q", got, tt.want)
			}
		})
	}
}
