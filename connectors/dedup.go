package connectors

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// HashKeys is the hex SHA-256 of keys sorted and joined by "\n" (keys
// itself is not reordered), for a batch's Batch.DedupKey; "" when keys is
// empty, so that the caller hashes the body.
func HashKeys(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.Join(slices.Sorted(slices.Values(keys)), "\n")))
	return hex.EncodeToString(sum[:])
}

// HashParts is the hex SHA-256 of the parts, each written as its decimal
// length, ":" and itself, so that no two different tuples hash the same
// input.
func HashParts(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}
