package memstore

import (
	"testing"

	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return New() })
}
