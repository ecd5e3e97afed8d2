package action

// Texter is implemented by an action's output that can tell a person, in
// a few lines, what its step did: kir's text report prints a step's Text
// after the step, whether the output comes from this run or from a
// journal (kir runs show). An output's text depends on nothing but the
// output: what it needs of the step's parameters, it carries.
type Texter interface {
	// Text returns the lines, each without a newline; none when there is
	// nothing to tell.
	Text() []string
}

// ItemErrors is implemented by a Texter whose lines show the error of
// each item it acted on (each pod, each node): a failed step with such an
// output is explained by them, and the report says nothing more of it. A
// failed step whose output is another Texter gets a line of its own with
// the step's error.
type ItemErrors interface {
	Texter
	// ShowsItemErrors marks the type.
	ShowsItemErrors()
}
