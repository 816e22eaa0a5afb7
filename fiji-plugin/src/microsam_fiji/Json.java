package microsam_fiji;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * JSON (RFC 8259: objects, arrays, strings, numbers, booleans, null; and Python's NaN and Infinity) for the worker
 * protocol, written by hand because the plugin may depend on nothing but ImageJ's ij.jar: Fiji's bundled JSON
 * libraries differ between releases and plain ImageJ has none. Parsing is strict (what Python's json.loads
 * rejects is rejected here too), so a garbled line fails with an {@link IllegalArgumentException} instead of
 * becoming a wrong value.
 */
final class Json {
	/** Deeper nesting is refused: the recursive parser must fail with an exception, not a StackOverflowError. */
	static final int MAX_DEPTH = 512;

	private static final String HEX = "0123456789abcdef";

	private final String text;
	private int pos;
	private int depth;

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

	/** JSON's four whitespace characters only (Character.isWhitespace would also pass e.g. \u001c). */
	private void skipSpace() {
		while (pos < text.length() && " \t\n\r".indexOf(text.charAt(pos)) >= 0)
			pos++;
	}

	private Object value() {
		if (pos >= text.length())
			throw error("unexpected end");
		char c = text.charAt(pos);
		switch (c) {
		case '{':
		case '[':
			if (++depth > MAX_DEPTH)
				throw error("nested deeper than " + MAX_DEPTH);
			try {
				return c == '{' ? object() : array();
			} finally {
				depth--;
			}
		case '"': return string();
		case 't': return literal("true", Boolean.TRUE);
		case 'f': return literal("false", Boolean.FALSE);
		case 'n': return literal("null", null);
		// Python's json.dumps writes these for float('nan') and the infinities (allow_nan=True by default): a
		// worker output holding one must not make its whole line unreadable
		case 'N': return literal("NaN", Double.NaN);
		case 'I': return literal("Infinity", Double.POSITIVE_INFINITY);
		case '-':
			if (text.startsWith("-Infinity", pos))
				return literal("-Infinity", Double.NEGATIVE_INFINITY);
			return number();
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
			if (c < 0x20) {
				pos--;
				throw error("control character in a string");
			}
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
			case 'u': // four ASCII hex digits (Integer.parseInt would take "+1ab", Character.digit other scripts'
				// digits); a surrogate pair is two escapes, two chars, as Java strings hold it
				int code = 0;
				for (int i = 0; i < 4; i++) {
					int digit = hexDigit(peek());
					if (digit < 0)
						throw error("bad \\u escape");
					code = code * 16 + digit;
					pos++;
				}
				sb.append((char) code);
				break;
			default: throw error("bad escape");
			}
		}
	}

	/**
	 * JSON's number grammar, {@code -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?}, checked here: Long.valueOf and
	 * Double.valueOf alone would also take "+1", "01", "1.", ".5". Integers become Long (Double beyond its range).
	 */
	private Number number() {
		int start = pos;
		boolean integer = true;
		if (pos < text.length() && text.charAt(pos) == '-')
			pos++;
		if (pos < text.length() && text.charAt(pos) == '0')
			pos++;
		else if (digits() == 0)
			throw error(pos == start ? "unexpected character" : "bad number");
		if (pos < text.length() && text.charAt(pos) == '.') {
			pos++;
			integer = false;
			if (digits() == 0)
				throw error("bad number");
		}
		if (pos < text.length() && (text.charAt(pos) == 'e' || text.charAt(pos) == 'E')) {
			pos++;
			integer = false;
			if (pos < text.length() && (text.charAt(pos) == '+' || text.charAt(pos) == '-'))
				pos++;
			if (digits() == 0)
				throw error("bad number");
		}
		String s = text.substring(start, pos);
		if (integer) {
			try {
				return Long.valueOf(s);
			} catch (NumberFormatException ignored) {
				// too large for a long: fall through to double
			}
		}
		return Double.valueOf(s);
	}

	private static int hexDigit(char c) {
		if (c >= '0' && c <= '9')
			return c - '0';
		if (c >= 'a' && c <= 'f')
			return c - 'a' + 10;
		if (c >= 'A' && c <= 'F')
			return c - 'A' + 10;
		return -1;
	}

	private int digits() {
		int start = pos;
		while (pos < text.length() && text.charAt(pos) >= '0' && text.charAt(pos) <= '9')
			pos++;
		return pos - start;
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
		} else if (value instanceof Boolean || value instanceof Integer || value instanceof Long
			|| value instanceof Short || value instanceof Byte) {
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
				if (c < 0x20 || isLoneSurrogate(s, i))
					escape(c, sb); // a lone surrogate would leave the UTF-8 writer as '?'; escaped it survives
				else
					sb.append(c);
			}
		}
		sb.append('"');
	}

	private static boolean isLoneSurrogate(String s, int i) {
		char c = s.charAt(i);
		if (Character.isHighSurrogate(c))
			return i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1));
		if (Character.isLowSurrogate(c))
			return i == 0 || !Character.isHighSurrogate(s.charAt(i - 1));
		return false;
	}

	private static void escape(char c, StringBuilder sb) {
		sb.append("\\u");
		for (int shift = 12; shift >= 0; shift -= 4)
			sb.append(HEX.charAt((c >> shift) & 0xf));
	}
}
