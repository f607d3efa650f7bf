package printer

import (
	"bufio"
	"io"
	"unicode/utf8"
)

// padding separates columns, as kubectl does.
const padding = 3

// Table aligns rows in columns.
type Table struct {
	widths []int
}

// NewTable sizes the columns to fit header and rows.
func NewTable(header []string, rows [][]string) *Table {
	t := &Table{}
	t.fit(header)
	for _, r := range rows {
		t.fit(r)
	}
	return t
}

func (t *Table) fit(row []string) {
	for i, c := range row {
		n := utf8.RuneCountInString(c)
		if i >= len(t.widths) {
			t.widths = append(t.widths, n)
		} else if n > t.widths[i] {
			t.widths[i] = n
		}
	}
}

// Write prints header (if any) and rows.
func (t *Table) Write(w io.Writer, header []string, rows [][]string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if len(header) > 0 {
		t.row(bw, header)
	}
	for _, r := range rows {
		t.row(bw, r)
	}
	return bw.Flush()
}

// WriteRow prints one more row with the remembered widths.
func (t *Table) WriteRow(w io.Writer, row []string) error {
	bw := bufio.NewWriterSize(w, 512)
	t.row(bw, row)
	return bw.Flush()
}

var spaces = []byte("                                                                ")

func (t *Table) row(bw *bufio.Writer, row []string) {
	for i, c := range row {
		bw.WriteString(c)
		if i == len(row)-1 {
			break
		}
		pad := padding
		if i < len(t.widths) {
			pad = max(padding, padding+t.widths[i]-utf8.RuneCountInString(c))
		}
		for pad > 0 {
			n := min(pad, len(spaces))
			bw.Write(spaces[:n])
			pad -= n
		}
	}
	bw.WriteByte('\n')
}
