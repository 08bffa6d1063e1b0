// What the spool holds and does is the package comment in spool.go: an
// on-disk log of opaque payloads, appended, acknowledged and replayed.
//
// It is delivery's alone and must never import proxy, config, consentmode,
// declog or delivery itself (delivery's TestImports fails): it knows
// neither HTTP nor consent, does no network I/O and does not log.

package spool
