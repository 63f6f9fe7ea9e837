package socket

// opSet is a socket's operations by ID. Nearly every socket carries one: it is held inline,
// and only a second one makes a map (a map of one entry is 250 bytes a watching phone).
type opSet struct {
	one  *operation
	more map[string]*operation
}

func (o *opSet) get(id string) *operation {
	if o.one != nil && o.one.id == id {
		return o.one
	}
	return o.more[id]
}

// len is how many operations the set holds.
func (o *opSet) len() int {
	n := len(o.more)
	if o.one != nil {
		n++
	}
	return n
}

// add adds op, whose ID is not in the set.
func (o *opSet) add(op *operation) {
	if o.one == nil {
		o.one = op
		return
	}
	if o.more == nil {
		o.more = map[string]*operation{}
	}
	o.more[op.id] = op
}

// remove removes the operation id when it is op, or any operation id when op is nil, and
// returns what it removed.
func (o *opSet) remove(id string, op *operation) *operation {
	found := o.get(id)
	if found == nil || (op != nil && found != op) {
		return nil
	}
	if o.one == found {
		o.one = nil
	} else {
		delete(o.more, id)
	}
	return found
}

// clear empties the set and returns what it held.
func (o *opSet) clear() []*operation {
	var all []*operation
	if o.one != nil {
		all = append(all, o.one)
	}
	for _, op := range o.more {
		all = append(all, op)
	}
	*o = opSet{}
	return all
}
