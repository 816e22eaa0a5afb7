package microsam_fiji; // Json is package-private: the test lives in the plugin's package

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Unit test of the plugin's hand-written {@link Json}, compiled against fiji-plugin/src and run by
 * tests/test_plugin_java.py: round trips, escapes, numbers, literals, and malformed input, which must fail with
 * IllegalArgumentException (the worker's reader skips such a line; any other exception would end that thread).
 * Prints one line per failed check and "failures=N"; the exit status is the number of failures (capped).
 */
public class JsonTest {
	private static int checks;
	private static final List<String> failures = new ArrayList<String>();

	public static void main(String[] args) {
		try {
			roundTrips();
			strings();
			numbers();
			literals();
			whitespace();
			malformed();
		} catch (Throwable e) {
			fail("unexpected " + e);
			e.printStackTrace();
		}
		for (String f : failures)
			System.out.println("FAIL " + f);
		System.out.println("checks=" + checks);
		System.out.println("failures=" + failures.size());
		System.exit(Math.min(failures.size(), 100));
	}

	// --- round trips ---------------------------------------------------------------------------------------------

	static void roundTrips() {
		Map<String, Object> inner = map("b", list(1L, 2L, map("c", list())), "d", map());
		Map<String, Object> value = map("a", inner, "e", list(list(), list(list())), "s", "x", "n", null,
			"t", true, "f", false, "x", 1.5, "neg", -3L);
		String text = Json.write(value);
		equal("nested written", text,
			"{\"a\":{\"b\":[1,2,{\"c\":[]}],\"d\":{}},\"e\":[[],[[]]],\"s\":\"x\",\"n\":null,\"t\":true,"
			+ "\"f\":false,\"x\":1.5,\"neg\":-3}");
		equal("nested parsed back", () -> Json.parse(text), value);
		equal("key order kept", () -> new ArrayList<Object>(Json.parseObject(text).keySet()),
			list("a", "e", "s", "n", "t", "f", "x", "neg"));
		// the worker's messages as appose writes them
		String completion = "{\"task\": \"7f0\", \"responseType\": \"COMPLETION\", \"outputs\": {\"rois\": "
			+ "\"/tmp/x/RoiSet.zip\", \"count\": 12, \"seconds\": 0.25, \"warnings\": [], \"show\": null}}";
		equal("completion type", () -> Json.parseObject(completion).get("responseType"), "COMPLETION");
		equal("completion count", () -> ((Map<?, ?>) Json.parseObject(completion).get("outputs")).get("count"), 12L);
		equal("completion rewritten", () -> Json.parse(Json.write(Json.parse(completion))), Json.parse(completion));
		List<Object> deep = list();
		List<Object> at = deep;
		for (int i = 0; i < 100; i++) {
			List<Object> next = list();
			at.add(next);
			at = next;
		}
		equal("100 levels", () -> Json.parse(Json.write(deep)), deep);
		equal("parseObject of a non-object", thrown(() -> Json.parseObject("[1]")) instanceof IllegalArgumentException,
			true);
	}

	// --- strings -------------------------------------------------------------------------------------------------

	static void strings() {
		String[] values = {"", "plain", "say \"hi\"", "C:\\Users\\x\\model.pt", "a/b", "\\\"", "é", "José-ü",
			"\ud834\udd1e", "clef \ud834\udd1e and é", "tab\there", "line\nbreak\r\n", "\u0000", "\u001f\u007f",
			"\u2028\u2029", "\ud800", "x\udc00", "\udc00\ud800"};
		for (String s : values)
			stringRoundTrip(s);
		StringBuilder all = new StringBuilder();
		for (char c = 0; c < 0x20; c++)
			all.append(c);
		stringRoundTrip(all.toString());
		String written = Json.write(all.toString());
		for (int i = 0; i < written.length(); i++)
			if (written.charAt(i) < 0x20)
				fail("control character " + (int) written.charAt(i) + " written raw: " + written);
		equal("quote and backslash written", () -> Json.write("a\"b\\c"), "\"a\\\"b\\\\c\"");
		equal("newline written", () -> Json.write("a\nb\tc\rd"), "\"a\\nb\\tc\\rd\"");
		equal("control written", () -> Json.write("\u0001\b\f"), "\"\\u0001\\u0008\\u000c\"");
		equal("non-ASCII written raw", () -> Json.write("é\ud834\udd1e"), "\"é\ud834\udd1e\"");
		equal("lone surrogate written escaped", () -> Json.write("\ud800"), "\"\\ud800\"");
		// what Python's json.dumps (ensure_ascii) writes for them
		equal("\\u00e9", () -> Json.parse("\"\\u00e9\""), "é");
		equal("\\u00C9 upper case", () -> Json.parse("\"\\u00C9\""), "É");
		equal("surrogate pair escape", () -> Json.parse("\"\\ud834\\udd1e\""), "\ud834\udd1e");
		equal("surrogate pair is one code point", () -> ((String) Json.parse("\"\\ud834\\udd1e\"")).codePointCount(0, 2), 1);
		equal("short escapes", () -> Json.parse("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""), "\"\\/\b\f\n\r\t");
		equal("\\u0000", () -> Json.parse("\"a\\u0000b\""), "a\u0000b");
		equal("key with escapes", () -> Json.parseObject("{\"k\\\"\\u00e9\":1}").keySet().iterator().next(), "k\"é");
	}

	static void stringRoundTrip(String s) {
		equal("string round trip " + escapeForReport(s), () -> Json.parse(Json.write(s)), s);
		Map<String, Object> asKey = map(s, s);
		equal("key round trip " + escapeForReport(s), () -> Json.parse(Json.write(asKey)), asKey);
	}

	// --- numbers -------------------------------------------------------------------------------------------------

	static void numbers() {
		Object[][] cases = {
			{"0", 0L}, {"-0", 0L}, {"7", 7L}, {"42", 42L}, {"-17", -17L},
			{"9223372036854775807", Long.MAX_VALUE}, {"-9223372036854775808", Long.MIN_VALUE},
			{"9223372036854775808", 9.223372036854775808e18}, {"3.25", 3.25}, {"-0.5", -0.5}, {"0.0", 0.0},
			{"1e3", 1000.0}, {"1E3", 1000.0}, {"1e-5", 1e-5}, {"2.5e+2", 250.0}, {"-1.5E-3", -1.5e-3},
			{"1e-05", 1e-5}, {"10", 10L}, {"1.0E10", 1e10}, {"123456789012", 123456789012L},
			{"NaN", Double.NaN}, {"Infinity", Double.POSITIVE_INFINITY}, {"-Infinity", Double.NEGATIVE_INFINITY}};
		for (Object[] c : cases) {
			equal("number " + c[0], () -> Json.parse((String) c[0]), c[1]);
			equal("number in array " + c[0], () -> Json.parse("[" + c[0] + "]"), list(c[1]));
		}
		Object[][] written = {
			{7, "7"}, {-7L, "-7"}, {(short) 3, "3"}, {(byte) -2, "-2"}, {Long.MIN_VALUE, "-9223372036854775808"},
			{1.5, "1.5"}, {-0.25, "-0.25"}, {1000.0, "1000.0"}, {1e-5, "1.0E-5"}, {1e300, "1.0E300"},
			{2.5f, "2.5"}, {Double.NaN, "null"}, {Double.POSITIVE_INFINITY, "null"}};
		for (Object[] w : written)
			equal("write " + w[0], () -> Json.write(w[0]), w[1]);
		double[] doubles = {0.1, -123.456, 6.02214076e23, 1.6e-19, Double.MAX_VALUE, Double.MIN_VALUE, 1e21};
		for (double d : doubles)
			equal("double round trip " + d, () -> Json.parse(Json.write(d)), d);
		long[] longs = {0, 1, -1, Integer.MAX_VALUE + 1L, Long.MAX_VALUE, Long.MIN_VALUE};
		for (long l : longs)
			equal("long round trip " + l, () -> Json.parse(Json.write(l)), l);
	}

	// --- literals and whitespace ---------------------------------------------------------------------------------

	static void literals() {
		equal("true", () -> Json.parse("true"), Boolean.TRUE);
		equal("false", () -> Json.parse("false"), Boolean.FALSE);
		equal("null", () -> Json.parse("null"), null);
		equal("literals in array", () -> Json.parse("[true,false,null]"), list(true, false, null));
		equal("null value kept", () -> Json.parseObject("{\"k\":null}").containsKey("k"), true);
		equal("write literals", () -> Json.write(list(true, false, null)), "[true,false,null]");
	}

	static void whitespace() {
		equal("JSON whitespace", () -> Json.parse(" \t\n\r{ \"a\" :\t[ 1 ,\n2 ] ,\"b\" : { } }\r\n "),
			map("a", list(1L, 2L), "b", map()));
	}

	// --- malformed input -----------------------------------------------------------------------------------------

	static void malformed() {
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
		for (String text : bad) {
			Throwable t = thrown(() -> {
				throw new AssertionError("accepted as " + Json.write(Json.parse(text)));
			});
			if (!(t instanceof IllegalArgumentException))
				fail("malformed " + escapeForReport(text.length() > 40 ? text.substring(0, 40) + "..." : text)
					+ " not rejected with IllegalArgumentException: " + t);
			else
				checks++;
		}
	}

	// --- helpers -------------------------------------------------------------------------------------------------

	static Map<String, Object> map(Object... kv) {
		Map<String, Object> m = new LinkedHashMap<String, Object>();
		for (int i = 0; i < kv.length; i += 2)
			m.put((String) kv[i], kv[i + 1]);
		return m;
	}

	static List<Object> list(Object... items) {
		return new ArrayList<Object>(Arrays.asList(items));
	}

	/** The value under test, computed inside the check: an exception fails that check only. */
	interface Value {
		Object get();
	}

	static void equal(String what, Value value, Object expected) {
		Object actual;
		try {
			actual = value.get();
		} catch (Throwable t) {
			checks++;
			fail(what + ": threw " + t);
			return;
		}
		equal(what, actual, expected);
	}

	static void equal(String what, Object actual, Object expected) {
		checks++;
		boolean same = actual == null ? expected == null : actual.equals(expected);
		if (same && actual != null && actual.getClass() != expected.getClass())
			same = false;
		if (!same)
			fail(what + ": got " + describe(actual) + ", expected " + describe(expected));
	}

	static Throwable thrown(Runnable r) {
		try {
			r.run();
			return null;
		} catch (Throwable t) { // StackOverflowError included: it would end the worker's reader thread
			return t;
		}
	}

	static String describe(Object o) {
		return o == null ? "null" : escapeForReport(String.valueOf(o)) + " (" + o.getClass().getSimpleName() + ")";
	}

	/**
	 * Non-ASCII and control characters as \\uXXXX and a backslash doubled (so a raw char and its escape differ),
	 * for report lines readable whatever the console's charset.
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

	static void fail(String message) {
		failures.add(message);
	}
}
