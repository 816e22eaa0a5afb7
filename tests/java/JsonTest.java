package microsam_fiji; // Json is package-private: the test lives in the plugin's package

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.junit.Test;
import org.junit.experimental.runners.Enclosed;
import org.junit.runner.RunWith;
import org.junit.runners.Parameterized;
import org.junit.runners.Parameterized.Parameter;
import org.junit.runners.Parameterized.Parameters;

/**
 * JUnit 4 tests of the plugin's hand-written {@link Json}, compiled against fiji-plugin/src and run with JUnitCore
 * by tests/test_plugin_java.py: round trips, escapes, numbers, literals, and malformed input, which must fail with
 * IllegalArgumentException (the worker's reader skips such a line; any other exception would end that thread).
 * The tables (strings, numbers, malformed input) are parameterized: each row is a test of its own.
 */
@RunWith(Enclosed.class)
public class JsonTest {

	// --- structures, literals and whitespace ---------------------------------------------------------------------

	public static class Structures {
		static Map<String, Object> nested() {
			Map<String, Object> inner = map("b", list(1L, 2L, map("c", list())), "d", map());
			return map("a", inner, "e", list(list(), list(list())), "s", "x", "n", null, "t", true, "f", false,
				"x", 1.5, "neg", -3L);
		}

		static final String NESTED = "{\"a\":{\"b\":[1,2,{\"c\":[]}],\"d\":{}},\"e\":[[],[[]]],\"s\":\"x\","
			+ "\"n\":null,\"t\":true,\"f\":false,\"x\":1.5,\"neg\":-3}";

		/** A message of the worker's as appose writes it. */
		static final String COMPLETION = "{\"task\": \"7f0\", \"responseType\": \"COMPLETION\", \"outputs\": "
			+ "{\"rois\": \"/tmp/x/RoiSet.zip\", \"count\": 12, \"seconds\": 0.25, \"warnings\": [], \"show\": null}}";

		@Test
		public void nestedValueIsWrittenCompactInInsertionOrder() {
			assertJson("nested written", NESTED, Json.write(nested()));
		}

		@Test
		public void nestedTextParsesBackToTheValue() {
			assertJson("nested parsed back", nested(), Json.parse(NESTED));
		}

		@Test
		public void parsedObjectKeepsKeyOrder() {
			assertJson("key order kept", list("a", "e", "s", "n", "t", "f", "x", "neg"),
				new ArrayList<Object>(Json.parseObject(NESTED).keySet()));
		}

		@Test
		public void apposeCompletionIsRead() {
			Map<String, Object> completion = Json.parseObject(COMPLETION);
			assertJson("completion type", "COMPLETION", completion.get("responseType"));
			assertJson("completion count", 12L, ((Map<?, ?>) completion.get("outputs")).get("count"));
		}

		@Test
		public void apposeCompletionIsRewrittenUnchanged() {
			assertJson("completion rewritten", Json.parse(COMPLETION), Json.parse(Json.write(Json.parse(COMPLETION))));
		}

		@Test
		public void hundredLevelsOfArraysRoundTrip() {
			List<Object> deep = list();
			List<Object> at = deep;
			for (int i = 0; i < 100; i++) {
				List<Object> next = list();
				at.add(next);
				at = next;
			}
			assertJson("100 levels", deep, Json.parse(Json.write(deep)));
		}

		@Test
		public void parseObjectRejectsANonObject() {
			assertThrows(IllegalArgumentException.class, () -> Json.parseObject("[1]"));
		}

		@Test
		public void literalsParse() {
			assertJson("true", Boolean.TRUE, Json.parse("true"));
			assertJson("false", Boolean.FALSE, Json.parse("false"));
			assertJson("null", null, Json.parse("null"));
			assertJson("literals in array", list(true, false, null), Json.parse("[true,false,null]"));
		}

		@Test
		public void aNullValueKeepsItsKey() {
			assertJson("null value kept", true, Json.parseObject("{\"k\":null}").containsKey("k"));
		}

		@Test
		public void literalsAreWritten() {
			assertJson("write literals", "[true,false,null]", Json.write(list(true, false, null)));
		}

		@Test
		public void jsonWhitespaceIsSkipped() {
			assertJson("JSON whitespace", map("a", list(1L, 2L), "b", map()),
				Json.parse(" \t\n\r{ \"a\" :\t[ 1 ,\n2 ] ,\"b\" : { } }\r\n "));
		}
	}

	// --- strings -------------------------------------------------------------------------------------------------

	public static class Strings {
		@Test
		public void controlCharactersAreNeverWrittenRaw() {
			String written = Json.write(allControlCharacters());
			for (int i = 0; i < written.length(); i++)
				if (written.charAt(i) < 0x20)
					fail("control character " + (int) written.charAt(i) + " written raw: " + escapeForReport(written));
		}

		@Test
		public void quoteAndBackslashAreEscaped() {
			assertJson("quote and backslash written", "\"a\\\"b\\\\c\"", Json.write("a\"b\\c"));
		}

		@Test
		public void newlineTabAndReturnAreShortEscapes() {
			assertJson("newline written", "\"a\\nb\\tc\\rd\"", Json.write("a\nb\tc\rd"));
		}

		@Test
		public void otherControlCharactersAreUnicodeEscapes() {
			assertJson("control written", "\"\\u0001\\u0008\\u000c\"", Json.write("\u0001\b\f"));
		}

		@Test
		public void nonAsciiIsWrittenRaw() {
			assertJson("non-ASCII written raw", "\"é\ud834\udd1e\"", Json.write("é\ud834\udd1e"));
		}

		@Test
		public void aLoneSurrogateIsWrittenEscaped() {
			assertJson("lone surrogate written escaped", "\"\\ud800\"", Json.write("\ud800"));
		}

		// what Python's json.dumps (ensure_ascii) writes

		@Test
		public void unicodeEscapesParse() {
			assertJson("\\u00e9", "é", Json.parse("\"\\u00e9\""));
			assertJson("\\u00C9 upper case", "É", Json.parse("\"\\u00C9\""));
			assertJson("\\u0000", "a\u0000b", Json.parse("\"a\\u0000b\""));
		}

		@Test
		public void aSurrogatePairEscapeParsesToOneCodePoint() {
			Object parsed = Json.parse("\"\\ud834\\udd1e\"");
			assertJson("surrogate pair escape", "\ud834\udd1e", parsed);
			assertEquals("surrogate pair is one code point", 1, ((String) parsed).codePointCount(0, 2));
		}

		@Test
		public void shortEscapesParse() {
			assertJson("short escapes", "\"\\/\b\f\n\r\t", Json.parse("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""));
		}

		@Test
		public void escapesInKeysParse() {
			assertJson("key with escapes", "k\"é", Json.parseObject("{\"k\\\"\\u00e9\":1}").keySet().iterator().next());
		}
	}

	@RunWith(Parameterized.class)
	public static class StringRoundTrips {
		@Parameters(name = "{index}: {0}")
		public static List<Object[]> strings() {
			String[] values = {"", "plain", "say \"hi\"", "C:\\Users\\x\\model.pt", "a/b", "\\\"", "é", "José-ü",
				"\ud834\udd1e", "clef \ud834\udd1e and é", "tab\there", "line\nbreak\r\n", "\u0000", "\u001f\u007f",
				"\u2028\u2029", "\ud800", "x\udc00", "\udc00\ud800", allControlCharacters()};
			List<Object[]> rows = new ArrayList<Object[]>();
			for (String s : values)
				rows.add(new Object[] {escapeForReport(s), s});
			return rows;
		}

		@Parameter(0)
		public String name;
		@Parameter(1)
		public String value;

		@Test
		public void asAValue() {
			assertJson("string round trip", value, Json.parse(Json.write(value)));
		}

		@Test
		public void asAKey() {
			Map<String, Object> asKey = map(value, value);
			assertJson("key round trip", asKey, Json.parse(Json.write(asKey)));
		}
	}

	// --- numbers -------------------------------------------------------------------------------------------------

	@RunWith(Parameterized.class)
	public static class NumbersParsed {
		@Parameters(name = "{index}: {0}")
		public static Object[][] cases() {
			return new Object[][] {
				{"0", 0L}, {"-0", 0L}, {"7", 7L}, {"42", 42L}, {"-17", -17L},
				{"9223372036854775807", Long.MAX_VALUE}, {"-9223372036854775808", Long.MIN_VALUE},
				{"9223372036854775808", 9.223372036854775808e18}, {"3.25", 3.25}, {"-0.5", -0.5}, {"0.0", 0.0},
				{"1e3", 1000.0}, {"1E3", 1000.0}, {"1e-5", 1e-5}, {"2.5e+2", 250.0}, {"-1.5E-3", -1.5e-3},
				{"1e-05", 1e-5}, {"10", 10L}, {"1.0E10", 1e10}, {"123456789012", 123456789012L},
				{"NaN", Double.NaN}, {"Infinity", Double.POSITIVE_INFINITY}, {"-Infinity", Double.NEGATIVE_INFINITY}};
		}

		@Parameter(0)
		public String text;
		@Parameter(1)
		public Object expected;

		@Test
		public void alone() {
			assertJson("number " + text, expected, Json.parse(text));
		}

		@Test
		public void inAnArray() {
			assertJson("number in array " + text, list(expected), Json.parse("[" + text + "]"));
		}
	}

	@RunWith(Parameterized.class)
	public static class NumbersWritten {
		@Parameters(name = "{index}: {0} as {2}")
		public static List<Object[]> cases() {
			Object[][] cases = {
				{7, "7"}, {-7L, "-7"}, {(short) 3, "3"}, {(byte) -2, "-2"}, {Long.MIN_VALUE, "-9223372036854775808"},
				{1.5, "1.5"}, {-0.25, "-0.25"}, {1000.0, "1000.0"}, {1e-5, "1.0E-5"}, {1e300, "1.0E300"},
				{2.5f, "2.5"}, {Double.NaN, "null"}, {Double.POSITIVE_INFINITY, "null"}};
			List<Object[]> rows = new ArrayList<Object[]>();
			for (Object[] c : cases)
				rows.add(new Object[] {describe(c[0]), c[0], c[1]});
			return rows;
		}

		@Parameter(0)
		public String name;
		@Parameter(1)
		public Object number;
		@Parameter(2)
		public String expected;

		@Test
		public void written() {
			assertJson("write " + number, expected, Json.write(number));
		}
	}

	@RunWith(Parameterized.class)
	public static class NumberRoundTrips {
		@Parameters(name = "{index}: {0}")
		public static List<Object[]> values() {
			Object[] values = {0.1, -123.456, 6.02214076e23, 1.6e-19, Double.MAX_VALUE, Double.MIN_VALUE, 1e21, // doubles
				0L, 1L, -1L, Integer.MAX_VALUE + 1L, Long.MAX_VALUE, Long.MIN_VALUE}; // longs
			List<Object[]> rows = new ArrayList<Object[]>();
			for (Object v : values)
				rows.add(new Object[] {describe(v), v});
			return rows;
		}

		@Parameter(0)
		public String name;
		@Parameter(1)
		public Object value;

		@Test
		public void keepsValueAndType() {
			assertJson("round trip " + value, value, Json.parse(Json.write(value)));
		}
	}

	// --- malformed input -----------------------------------------------------------------------------------------

	@RunWith(Parameterized.class)
	public static class Malformed {
		@Parameters(name = "{index}: {0}")
		public static List<Object[]> inputs() {
			StringBuilder deep = new StringBuilder();
			for (int i = 0; i < 100000; i++)
				deep.append('[');
			String[] bad = {
				// structure
				"", " ", "{", "}", "[", "]", "[]]", "{}}", "[1,]", "[,1]", "[1 2]", "{\"a\" 1}", "{\"a\":}", "{a:1}",
				"{'a':1}", "{\"a\":1,}", "{,}", "{\"a\":1 \"b\":2}", "{1:2}", "[1]x", "{} {}", "\"a\" \"b\"", "'a'",
				deep.toString(), "[" + deep + "]",
				// strings: unterminated, bad escapes (\\u takes four ASCII hex digits only), raw control characters
				"\"abc", "\"abc\\", "\"\\x\"", "\"\\u12\"", "\"\\u12\"}", "\"\\u+123\"", "\"\\u-123\"", "\"\\u12g4\"",
				"\"\\u \"", "\"\\u\u0663\u0663\u0663\u0663\"", "\"\\u\uff10\uff10\uff10\uff10\"", "\"a\nb\"", "\"\t\"",
				"\"\u0000\"",
				// literals
				"tru", "truex", "True", "nul", "nulll", "nan", "Inf", "-Inf", "infinity",
				// numbers outside JSON's grammar
				"01", "-01", "00", "+1", "1.", ".5", "-", "-.5", "1e", "1e+", "1E-", "--1", "1.2.3", "1e5e5", "0x10",
				"1_000", "\uff11",
				// whitespace other than space, tab, newline, carriage return
				"\u001c1", "\u00a01", "1\u2028"};
			List<Object[]> rows = new ArrayList<Object[]>();
			for (String text : bad)
				rows.add(new Object[] {escapeForReport(text.length() > 40 ? text.substring(0, 40) + "..." : text), text});
			return rows;
		}

		@Parameter(0)
		public String name;
		@Parameter(1)
		public String text;

		@Test
		public void isRejectedWithIllegalArgumentException() {
			Object accepted;
			try {
				accepted = Json.parse(text);
			} catch (IllegalArgumentException expected) {
				return;
			} catch (Throwable t) { // StackOverflowError included: it would end the worker's reader thread
				StackTraceElement[] at = t.getStackTrace();
				throw new AssertionError("malformed " + name + " not rejected with IllegalArgumentException: " + t
					+ (at.length > 0 ? " at " + at[0] : ""));
			}
			fail("malformed " + name + " accepted as " + escapeForReport(Json.write(accepted)));
		}
	}

	// --- helpers -------------------------------------------------------------------------------------------------

	/** Equal, and of the same class (a Long is not a Double, an ArrayList not some other List). */
	static void assertJson(String what, Object expected, Object actual) {
		boolean same = expected == null ? actual == null
			: expected.equals(actual) && expected.getClass() == actual.getClass();
		if (!same)
			fail(what + ": expected " + describe(expected) + " but was " + describe(actual));
	}

	static Map<String, Object> map(Object... kv) {
		Map<String, Object> m = new LinkedHashMap<String, Object>();
		for (int i = 0; i < kv.length; i += 2)
			m.put((String) kv[i], kv[i + 1]);
		return m;
	}

	static List<Object> list(Object... items) {
		return new ArrayList<Object>(Arrays.asList(items));
	}

	static String allControlCharacters() {
		StringBuilder all = new StringBuilder();
		for (char c = 0; c < 0x20; c++)
			all.append(c);
		return all.toString();
	}

	static String describe(Object o) {
		return o == null ? "null" : escapeForReport(String.valueOf(o)) + " (" + o.getClass().getSimpleName() + ")";
	}

	/**
	 * Non-ASCII and control characters as \\uXXXX and a backslash doubled (so a raw char and its escape differ),
	 * for report lines and test names readable whatever the console's charset.
	 */
	static String escapeForReport(String s) {
		StringBuilder sb = new StringBuilder();
		for (char c : s.toCharArray()) {
			if (c < 0x20 || c > 0x7e)
				sb.append(String.format("\\u%04x", (int) c));
			else
				sb.append(c == '\\' ? "\\\\" : String.valueOf(c));
		}
		return sb.toString();
	}
}
