"""Reading a page: find elements by tag and attributes in a response's HTML."""

from collections.abc import Iterator

from django.test.html import Element, parse_html


def elements(response, tag: str, **attributes: str) -> list[Element]:
    """Every ``tag`` element of the page whose attributes include ``attributes`` (``class_`` for class)."""
    wanted = {name.rstrip("_").replace("_", "-"): value for name, value in attributes.items()}
    return [e for e in _walk(parse_html(response.content.decode())) if e.name == tag and _has(e, wanted)]


def element(response, tag: str, **attributes: str) -> Element:
    found = elements(response, tag, **attributes)
    assert len(found) == 1, f"expected one <{tag} {attributes}>, found {len(found)}"
    return found[0]


def text(node: Element | str) -> str:
    """The element's text, whitespace collapsed."""
    if isinstance(node, str):
        return node
    return " ".join(" ".join(text(child) for child in node.children).split())


def field_block(response, name: str) -> Element:
    """The ``<div class="field">`` that holds the input, select or textarea named ``name``."""
    for block in elements(response, "div", class_="field"):
        if any(e.name in ("input", "select", "textarea") and _has(e, {"name": name}) for e in _walk(block)):
            return block
    raise AssertionError(f"no field named {name!r} on the page")


def errors_in(node: Element) -> list[str]:
    return [
        text(item) for ul in _walk(node) if ul.name == "ul" and _has(ul, {"class": "errorlist"}) for item in ul.children
    ]


def _walk(node: Element) -> Iterator[Element]:
    for child in node.children:
        if isinstance(child, Element):
            yield child
            yield from _walk(child)


def _has(node: Element, wanted: dict[str, str]) -> bool:
    attributes = dict(node.attributes)
    for name, value in wanted.items():
        actual = attributes.get(name)
        if name == "class":
            if actual is None or not set(value.split()) <= set(actual.split()):
                return False
        elif actual != value:
            return False
    return True
