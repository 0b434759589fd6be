// Package drift compares a live object with what server-side apply would make of
// it, so that the agent finds hand-made changes to the fields it declares.
package drift
