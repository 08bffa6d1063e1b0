// Package consentmode reads the consent state carried by a Google tag hit
// and decides what of the hit may leave: forward, strip, cookieless or
// block. It also rewrites the hit to match that decision.
//
// Everything here is pure: bytes in, values out. The package performs no
// I/O, does not log, never reads the clock (callers pass the day in) and
// imports nothing but the standard library. Parsers never keep a reference
// to the bytes they are given. The proxy, the explain and audit commands,
// the decision log and the rules printout all come from this package's
// Decide function and its rule tables, so they cannot disagree.
package consentmode
