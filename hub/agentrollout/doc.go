// Package agentrollout owns the fleet's own agent: the AgentRollout controller renders
// the agent's Deployment (deploy/agent) with spec.image and hands it, through the
// deployment engine, to every targeted cluster as a platform deployment whose
// Assignments carry the agent version each cluster must report; and Ensure, which the
// hub runs at start, offers the image of its --agent-image flag.
package agentrollout
