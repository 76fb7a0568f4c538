package store

import (
	"context"

	"github.com/dynconn/dynconn/internal/model"
)

// InsertConnectionsBatch runs the batched create statement once for cs, as
// s.creates would for creates that came at once, and reports which were
// inserted.
func InsertConnectionsBatch(ctx context.Context, s *Store, cs []model.Connection, a Audit) ([]bool, error) {
	rows := make([]createRow, len(cs))
	for i := range cs {
		r, err := newCreateRow(&cs[i], a)
		if err != nil {
			return nil, err
		}
		rows[i] = r
	}
	res, err := s.insertConnectionsBatch(ctx, rows)
	if err != nil {
		return nil, err
	}
	inserted := make([]bool, len(res))
	for i, r := range res {
		inserted[i] = r.inserted
	}
	return inserted, nil
}
