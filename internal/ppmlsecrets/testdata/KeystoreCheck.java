// KeystoreCheck opens keystores the way PPML's Java components do and runs
// a mutual-TLS handshake with each one used as both key store and trust
// store (Spark's spark.ssl.* with keystore.jks, Flink's
// security.ssl.internal.* with keystore.pkcs12). Run with the single-file
// source launcher (Java 11+): java KeystoreCheck.java TYPE PATH [TYPE PATH...]
// with the password in the environment variable KEYSTORE_PASSWORD.
//
// For each keystore it prints one line:
//   TYPE alias=A key=ALG sha256=HEX handshake=TLSv1.2,TLSv1.3
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.security.Key;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.cert.Certificate;
import java.util.Collections;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class KeystoreCheck {
    public static void main(String[] args) throws Exception {
        char[] pw = System.getenv("KEYSTORE_PASSWORD").toCharArray();
        for (int i = 0; i + 1 < args.length; i += 2) {
            check(args[i], args[i + 1], pw);
        }
    }

    static void check(String type, String path, char[] pw) throws Exception {
        KeyStore ks = KeyStore.getInstance(type);
        try (InputStream in = new FileInputStream(path)) {
            ks.load(in, pw);
        }
        List<String> aliases = Collections.list(ks.aliases());
        if (aliases.size() != 1) {
            throw new IllegalStateException(type + ": " + aliases.size() + " entries");
        }
        String alias = aliases.get(0);
        if (!ks.isKeyEntry(alias)) {
            throw new IllegalStateException(type + ": entry " + alias + " is not a key entry");
        }
        Key key = ks.getKey(alias, pw);
        Certificate cert = ks.getCertificateChain(alias)[0];
        StringBuilder fp = new StringBuilder();
        for (byte b : MessageDigest.getInstance("SHA-256").digest(cert.getEncoded())) {
            fp.append(String.format("%02x", b));
        }

        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, pw);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ks);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);

        // Java 8 speaks TLS 1.2 by default; later releases prefer 1.3.
        StringBuilder protocols = new StringBuilder();
        for (String protocol : new String[] {"TLSv1.2", "TLSv1.3"}) {
            protocols.append(protocols.length() == 0 ? "" : ",").append(handshake(ctx, protocol, type));
        }
        System.out.println(type + " alias=" + alias + " key=" + key.getAlgorithm() + " sha256=" + fp
                + " handshake=" + protocols);
    }

    // handshake runs a mutual-TLS handshake over loopback, the client
    // checking the server's name "localhost" as an HTTPS client does.
    static String handshake(SSLContext ctx, String protocol, String type) throws Exception {
        try (SSLServerSocket server = (SSLServerSocket) ctx.getServerSocketFactory().createServerSocket(0)) {
            server.setNeedClientAuth(true);
            Thread t = new Thread(() -> {
                try (SSLSocket s = (SSLSocket) server.accept()) {
                    s.startHandshake();
                    OutputStream out = s.getOutputStream();
                    out.write('k');
                    out.flush();
                } catch (Exception e) {
                    e.printStackTrace();
                }
            });
            t.start();
            try (SSLSocket c = (SSLSocket) ctx.getSocketFactory().createSocket("localhost", server.getLocalPort())) {
                SSLParameters p = c.getSSLParameters();
                p.setEndpointIdentificationAlgorithm("HTTPS");
                p.setProtocols(new String[] {protocol});
                c.setSSLParameters(p);
                c.startHandshake();
                if (c.getInputStream().read() != 'k') {
                    throw new IllegalStateException(type + ": no data after handshake");
                }
                t.join();
                return c.getSession().getProtocol();
            }
        }
    }
}
