package jit_test

import "github.com/drawbridge/drawbridge/internal/store"

type storeObjects = store.Objects
