package eventstest

import (
	"reflect"

	"github.com/google/go-cmp/cmp"

	"skiff.dev/events/state"
)

// DiffStates returns how two folds differ, "" when they are the same: every object, subject
// sequence, index and shared template the fold keeps (its unexported fields included), times
// compared by instant. For tests that check a snapshot against a replay.
func DiffStates(a, b *state.State) string {
	return cmp.Diff(a, b, cmp.AllowUnexported(unexportedTypes()...))
}

// unexportedTypes are zero values of State and of every struct type in it that has unexported
// fields (the fold's template is one it does not export).
func unexportedTypes() []any {
	var out []any
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if seen[t] {
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(t.Elem())
		case reflect.Map:
			walk(t.Key())
			walk(t.Elem())
		case reflect.Struct:
			if t.PkgPath() == "time" {
				return // compared with its Equal method
			}
			own := false
			for i := range t.NumField() {
				f := t.Field(i)
				own = own || !f.IsExported()
				walk(f.Type)
			}
			if own {
				out = append(out, reflect.New(t).Elem().Interface())
			}
		}
	}
	walk(reflect.TypeFor[state.State]())
	return out
}
