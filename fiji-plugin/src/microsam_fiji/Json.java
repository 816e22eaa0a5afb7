package microsam_fiji;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JSON subset the worker protocol uses (objects, arrays, strings, numbers, booleans, null), written by hand
 * because the plugin may depend on nothing but ImageJ's ij.jar: Fiji's bundled JSON libraries differ between
 * releases and plain ImageJ has none.
 */
final class Json {
	private final String text;
	private int pos;

	private Json(String text) {
		this.text = text;
	}

	static Object parse(String text) {
		Json p = new Json(text);
		p.skipSpace();
		Object value = p.value();
		p.skipSpace();
		if (p.pos != text.length())
			throw p.error("trailing characters");
		return value;
	}

	@SuppressWarnings("unchecked")
	static Map<String, Object> parseObject(String text) {
		Object value = parse(text);
		if (!(value instanceof Map))
			throw new IllegalArgumentException("not a JSON object: " + text);
		return (Map<String, Object>) value;
	}

	private IllegalArgumentException error(String what) {
		return new IllegalArgumentException("bad JSON (" + what + ") at " + pos + ": " + text);
	}

	private void skipSpace() {
		while (pos < text.length() && Character.isWhitespace(text.charAt(pos)))
			pos++;
	}

	private Object value() {
		if (pos >= text.length())
			throw error("unexpected end");
		char c = text.charAt(pos);
		switch (c) {
		case '{': return object();
		case '[': return array();
		case '"': return string();
		case 't': return literal("true", Boolean.TRUE);
		case 'f': return literal("false", Boolean.FALSE);
		case 'n': return literal("null", null);
		default: return number();
		}
	}

	private Object literal(String word, Object value) {
		if (!text.startsWith(word, pos))
			throw error("unknown literal");
		pos += word.length();
		return value;
	}

	private Map<String, Object> object() {
		Map<String, Object> map = new LinkedHashMap<String, Object>();
		pos++;
		skipSpace();
		if (peek() == '}') {
			pos++;
			return map;
		}
		while (true) {
			skipSpace();
			String key = string();
			skipSpace();
			expect(':');
			skipSpace();
			map.put(key, value());
			skipSpace();
			if (peek() == ',') {
				pos++;
				continue;
			}
			expect('}');
			return map;
		}
	}

	private List<Object> array() {
		List<Object> list = new ArrayList<Object>();
		pos++;
		skipSpace();
		if (peek() == ']') {
			pos++;
			return list;
		}
		while (true) {
			skipSpace();
			list.add(value());
			skipSpace();
			if (peek() == ',') {
				pos++;
				continue;
			}
			expect(']');
			return list;
		}
	}

	private char peek() {
		if (pos >= text.length())
			throw error("unexpected end");
		return text.charAt(pos);
	}

	private void expect(char c) {
		if (peek() != c)
			throw error("expected '" + c + "'");
		pos++;
	}

	private String string() {
		expect('"');
		StringBuilder sb = new StringBuilder();
		while (true) {
			char c = peek();
			pos++;
			if (c == '"')
				return sb.toString();
			if (c != '\\') {
				sb.append(c);
				continue;
			}
			char e = peek();
			pos++;
			switch (e) {
			case '"': sb.append('"'); break;
			case '\\': sb.append('\\'); break;
			case '/': sb.append('/'); break;
			case 'b': sb.append('\b'); break;
			case 'f': sb.append('\f'); break;
			case 'n': sb.append('\n'); break;
			case 'r': sb.append('\r'); break;
			case 't': sb.append('\t'); break;
			case 'u':
				if (pos + 4 > text.length())
					throw error("short \\u escape");
				sb.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
				pos += 4;
				break;
			default: throw error("bad escape");
			}
		}
	}

	private Number number() {
		int start = pos;
		while (pos < text.length() && "+-0123456789.eE".indexOf(text.charAt(pos)) >= 0)
			pos++;
		String s = text.substring(start, pos);
		if (s.isEmpty())
			throw error("unexpected character");
		if (s.indexOf('.') < 0 && s.indexOf('e') < 0 && s.indexOf('E') < 0) {
			try {
				return Long.valueOf(s);
			} catch (NumberFormatException ignored) {
				// too large for a long: fall through to double
			}
		}
		return Double.valueOf(s);
	}

	static String write(Object value) {
		StringBuilder sb = new StringBuilder();
		write(value, sb);
		return sb.toString();
	}

	private static void write(Object value, StringBuilder sb) {
		if (value == null) {
			sb.append("null");
		} else if (value instanceof String) {
			quote((String) value, sb);
		} else if (value instanceof Boolean || value instanceof Integer || value instanceof Long) {
			sb.append(value);
		} else if (value instanceof Number) {
			double d = ((Number) value).doubleValue();
			sb.append(Double.isNaN(d) || Double.isInfinite(d) ? "null" : String.valueOf(d));
		} else if (value instanceof Map) {
			sb.append('{');
			Iterator<?> it = ((Map<?, ?>) value).entrySet().iterator();
			while (it.hasNext()) {
				Map.Entry<?, ?> e = (Map.Entry<?, ?>) it.next();
				quote(String.valueOf(e.getKey()), sb);
				sb.append(':');
				write(e.getValue(), sb);
				if (it.hasNext())
					sb.append(',');
			}
			sb.append('}');
		} else if (value instanceof List) {
			sb.append('[');
			Iterator<?> it = ((List<?>) value).iterator();
			while (it.hasNext()) {
				write(it.next(), sb);
				if (it.hasNext())
					sb.append(',');
			}
			sb.append(']');
		} else {
			quote(value.toString(), sb);
		}
	}

	private static void quote(String s, StringBuilder sb) {
		sb.append('"');
		for (int i = 0; i < s.length(); i++) {
			char c = s.charAt(i);
			switch (c) {
			case '"': sb.append("\\\""); break;
			case '\\': sb.append("\\\\"); break;
			case '\n': sb.append("\\n"); break;
			case '\r': sb.append("\\r"); break;
			case '\t': sb.append("\\t"); break;
			default:
				if (c < 0x20)
					sb.append(String.format("\\u%04x", (int) c));
				else
					sb.append(c);
			}
		}
		sb.append('"');
	}
}
