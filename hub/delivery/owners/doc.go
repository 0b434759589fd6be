// Package owners registers, once, the deployment kinds that own Assignments: their
// API version, how to make and list their objects and where their artifact is, so
// that the engine, the Assignment release and the artifact collector handle every
// kind alike.
package owners
