package socket

import "testing"

func TestOpSet(t *testing.T) {
	var set opSet
	a, b, c := &operation{id: "a"}, &operation{id: "b"}, &operation{id: "c"}
	set.add(a)
	set.add(b)
	set.add(c)
	if set.get("a") != a || set.get("b") != b || set.get("c") != c || set.get("d") != nil {
		t.Fatal("get does not find what was added")
	}
	if set.remove("b", a) != nil || set.get("b") != b {
		t.Fatal("remove took another operation of that ID")
	}
	if set.remove("a", a) != a || set.get("a") != nil {
		t.Fatal("remove left the inline operation")
	}
	set.add(&operation{id: "a"}) // the ID is free again
	if set.remove("c", nil) != c || set.get("c") != nil {
		t.Fatal("remove left a mapped operation")
	}
	if all := set.clear(); len(all) != 2 || set.get("a") != nil || set.get("b") != nil {
		t.Fatalf("clear returned %d operations and left some", len(all))
	}
}
