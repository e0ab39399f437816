public import JSONRPC

// Schemas shared by several results.

public enum APISchemas {
    public static let node = Schema.object([
        .init("ref", .string, required: true),
        .init("parent", .anyOf([.string, .null]), required: true),
        .init("depth", .integer, required: true),
        .init("role", .string, required: true, "AT-SPI standard role name, e.g. \"push button\"."),
        .init("name", .string, required: true),
        .init("states", .arrayOf(.string), required: true),
        .init("description", .string),
        .init("bounds", .object([.init("x", .integer), .init("y", .integer), .init("width", .integer), .init("height", .integer)])),
        .init("actions", .arrayOf(.string)),
        .init("text", .string, "Text content: only where the caller may read this element (class read); never for password fields."),
        .init("value", .object([.init("current", .number), .init("minimum", .number), .init("maximum", .number)])),
        .init("content_withheld", .boolean, "The element has text or a value the caller may not read (class read), so it is left out."),
        .init("relations", .object([], additional: true)),
    ], additional: true)

    public static let identity = Schema.object([
        .init("uid", .integer, required: true),
        .init("pid", .integer, required: true),
        .init("exe", .string, required: true),
        .init("unit", .anyOf([.string, .null])),
        .init("script", .anyOf([.string, .null]), "Script path for interpreters; advisory."),
        .init("label", .anyOf([.string, .null]), "Advisory label from session.hello; never trusted."),
    ], additional: true)
}
