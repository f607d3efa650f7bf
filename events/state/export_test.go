package state

// Templates is how many owners' pod templates the state keeps.
func (s *State) Templates() int { return len(s.templates) }

// ShareTemplates turns sharing off (for the memory benchmark's baseline) and returns a func
// that restores it.
func ShareTemplates(on bool) (restore func()) {
	old := shareTemplates
	shareTemplates = on
	return func() { shareTemplates = old }
}
